import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, secretValues } from '../src/config.js';
import { ROOT, tempDir } from './helpers.js';

function configFile(text: string): string {
  const dir = tempDir();
  const file = path.join(dir, 'config.yml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('loads the shipped config.yml with defaults filled in', () => {
    const c = loadConfig({ configPath: path.join(ROOT, 'config.yml'), env: {}, dotenv: false });
    expect(c.server.port).toBe(8100);
    expect(c.server.host).toBe('127.0.0.1');
    expect(c.max_concurrent_agents).toBe(3);
    expect(c.workflows.code_review?.steps).toHaveLength(3);
    expect(c.agent_templates.reviewer.allowed_tools).not.toContain('Edit');
    expect(c.agent_templates.coder.system_prompt_file).toBe(path.join(ROOT, 'prompts/coder.md'));
    expect(c.data_dir).toBe(path.join(ROOT, 'data'));
    expect(c.repos_dir).toBe(path.join(ROOT, 'data', 'repos'));
  });

  it('chooses the database and the role, and refuses split roles without PostgreSQL', () => {
    const load = (text: string, env: Record<string, string> = {}) => loadConfig({ configPath: configFile(text), env, dotenv: false });
    const dflt = load('data_dir: ./d\n');
    expect(dflt.database).toMatchObject({ dialect: 'sqlite', url: expect.stringMatching(/\/d\/factory\.db$/) });
    expect(dflt.role).toBe('all');
    expect(load('database:\n  url: sqlite:./x.db\n').database.url).toMatch(/\/x\.db$/);
    const pg = load('role: worker\npublic_url: http://api:8100\n', {
      FACTORY_DATABASE_URL: 'postgres://factory:Sup3r-secret@db:5432/factory',
    });
    expect(pg.database.dialect).toBe('postgres');
    expect(pg.database.describe).toBe('postgres://factory:***@db:5432/factory');
    expect(secretValues(pg)).toContain('Sup3r-secret');
    const viaQuery = load('', { FACTORY_DATABASE_URL: 'postgres://factory@db/f?password=Qu3ry-secret&sslmode=require' });
    expect(viaQuery.database.describe).toBe('postgres://factory@db/f?password=***&sslmode=require');
    expect(secretValues(viaQuery)).toContain('Qu3ry-secret');
    expect(load('', { FACTORY_ROLE: 'api', FACTORY_DATABASE_URL: 'postgres://db/f' }).role).toBe('api');
    expect(() => load('role: worker\npublic_url: http://api:8100\n')).toThrow(/role: "worker" needs database\.url = postgres/);
    expect(() => load('role: worker\n', { FACTORY_DATABASE_URL: 'postgres://db/f' })).toThrow(/public_url: a worker needs the API/);
    expect(() => load('role: boss\n')).toThrow(/^invalid config: role:/);
    expect(() => load('database:\n  url: mysql://db/f\n')).toThrow(/database\.url: expected sqlite:<file> or postgres:/);
  });

  it('names the key and the reason for a wrong value', () => {
    const file = configFile('max_concurrent_agents: "lots"\n');
    expect(() => loadConfig({ configPath: file, env: {}, dotenv: false })).toThrow(ConfigError);
    expect(() => loadConfig({ configPath: file, env: {}, dotenv: false })).toThrow(/max_concurrent_agents/);
    expect(() => loadConfig({ configPath: configFile('agent:\n  kill_grace_seconds: -1\n'), env: {}, dotenv: false })).toThrow(
      /agent\.kill_grace_seconds/,
    );
    expect(() => loadConfig({ configPath: configFile('no_such_key: 1\n'), env: {}, dotenv: false })).toThrow(/no_such_key/);
    expect(() => loadConfig({ configPath: configFile('a: [\n'), env: {}, dotenv: false })).toThrow(/not valid YAML/);
    expect(() => loadConfig({ configPath: '/nonexistent/config.yml', env: {}, dotenv: false })).toThrow(/not found/);
  });

  it('takes overrides and secrets from the environment and a .env file', () => {
    const file = configFile('server:\n  port: 9000\n');
    writeFileSync(path.join(path.dirname(file), '.env'), 'GITHUB_TOKEN=from-dotenv\nFACTORY_PORT=9100\n');
    const c = loadConfig({ configPath: file, env: { FACTORY_DATA_DIR: '/tmp/x', FACTORY_AUTH_TOKEN: 'secret-token' } });
    expect(c.server.port).toBe(9100);
    expect(c.data_dir).toBe('/tmp/x');
    expect(c.secrets.githubToken).toBe('from-dotenv');
    expect(c.server.host).toBe('0.0.0.0');
    const real = loadConfig({ configPath: file, env: { GITHUB_TOKEN: 'from-env' } });
    expect(real.secrets.githubToken).toBe('from-env');
    expect(() => loadConfig({ configPath: file, env: { FACTORY_PORT: 'abc' }, dotenv: false })).toThrow(/FACTORY_PORT/);
  });

  it('has the code_review workflow built in, and lets config.yml redefine it', () => {
    const bare = loadConfig({ configPath: configFile('{}\n'), env: {}, dotenv: false });
    expect(bare.workflows.code_review?.steps.map((s) => s.agent)).toEqual(['coder', 'reviewer', 'coder_revision']);
    const mine = loadConfig({
      configPath: configFile('workflows:\n  code_review:\n    steps:\n      - agent: coder\n'),
      env: {},
      dotenv: false,
    });
    expect(mine.workflows.code_review?.steps).toHaveLength(1);
  });

  it('refuses a public bind address without an auth token', () => {
    const file = configFile('server:\n  host: 0.0.0.0\n');
    const open = loadConfig({ configPath: file, env: {}, dotenv: false });
    expect(open.server.host).toBe('127.0.0.1');
    expect(open.server.hostForced).toBe(true);
    const locked = loadConfig({ configPath: file, env: { FACTORY_AUTH_TOKEN: 'abcdefgh' }, dotenv: false });
    expect(locked.server.host).toBe('0.0.0.0');
  });
});
