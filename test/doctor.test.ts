// `factory doctor` end to end: the real bin/factory.js in a child process, against loopback fakes.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FakeGitHub, FakeTelegram } from './fakes/http/index.js';
import { FAKE_CLAUDE_PATH } from './fakes/claude-helpers.js';
import { ROOT, removeDir, tempDir } from './helpers.js';

const BIN = path.join(ROOT, 'bin', 'factory.js');
const TOKEN = 'ghp_doctorTestToken0123456789abcdef';
const WRONG_TOKEN = 'ghp_wrongToken9876543210zyxwvu';
const TG_TOKEN = '424242:doctor-telegram-secret-token';
const AGENT_TYPES = ['coder', 'coder_revision', 'reviewer', 'researcher', 'devops'];

interface Run {
  code: number;
  out: string;
}

const dirs: string[] = [];
/** Every output seen, so the last test can check that no secret ever leaked. */
const outputs: string[] = [];
let github: FakeGitHub;
let githubUrl: string;

beforeAll(async () => {
  github = new FakeGitHub({ validToken: TOKEN, login: 'factory-bot', scopes: 'repo, workflow' });
  githubUrl = await github.start();
});

afterAll(async () => {
  await github.stop();
  for (const d of dirs) removeDir(d);
});

/** A config that passes every local check: data under a temp dir, the shipped prompts, the fake claude. */
function baseConfig(dir: string): Record<string, unknown> {
  return {
    data_dir: path.join(dir, 'data'),
    github: { api_url: githubUrl },
    agent: { command: FAKE_CLAUDE_PATH },
    agent_templates: Object.fromEntries(AGENT_TYPES.map((t) => [t, { system_prompt_file: path.join(ROOT, 'prompts', `${t}.md`) }])),
    // A command that cannot exist: the docker check must only warn.
    docker: { command: 'factory-test-no-docker' },
    memory: { enabled: false },
  };
}

function doctor(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Run> {
  const dir = tempDir('factory-doctor-');
  dirs.push(dir);
  mkdirSync(path.join(dir, 'home'));
  const file = path.join(dir, 'config.yml');
  writeFileSync(file, stringify(config));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'doctor'],
      {
        cwd: dir,
        timeout: 45_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: path.join(dir, 'home'), FACTORY_CONFIG: file, ...env },
      },
      (err, stdout, stderr) => {
        const out = `${stdout}${stderr}`;
        outputs.push(out);
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, out });
      },
    );
  });
}

const line = (out: string, name: string) => out.split('\n').find((l) => new RegExp(`^\\S+\\s+${name}\\s`).test(l)) ?? '';

describe('factory doctor', () => {
  it('passes with a valid token and a working agent command', async () => {
    const dir = tempDir('factory-doctor-');
    dirs.push(dir);
    const r = await doctor(baseConfig(dir), { GITHUB_TOKEN: TOKEN });
    expect(r.out).not.toMatch(/^FAIL/m);
    expect(r.code, r.out).toBe(0);
    expect(line(r.out, 'config')).toMatch(/^ok/);
    expect(line(r.out, 'github')).toMatch(/^ok .*factory-bot.*scopes: repo, workflow/);
    expect(line(r.out, 'agent')).toMatch(new RegExp(`^ok .*${path.basename(FAKE_CLAUDE_PATH)}`));
    expect(line(r.out, 'git')).toMatch(/^ok .*git version/);
    expect(line(r.out, 'data_dir')).toMatch(/^ok .*GB free/);
    expect(line(r.out, 'docker')).toMatch(/^warn .*not found/);
    expect(r.out).toMatch(/\d+ ok, \d+ warning\(s\), 0 failed/);
    // The fake GitHub saw the token as a bearer header.
    expect(github.requests.some((q) => q.path === '/user' && q.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('says clearly that a bad GitHub token was rejected, and exits 1', async () => {
    const dir = tempDir('factory-doctor-');
    dirs.push(dir);
    const r = await doctor(baseConfig(dir), { GITHUB_TOKEN: WRONG_TOKEN });
    expect(r.code).toBe(1);
    expect(line(r.out, 'github')).toMatch(/^FAIL .*GitHub token rejected \(401/);
    expect(line(r.out, 'github')).toContain('fix: create a new token');
    expect(r.out).not.toContain(WRONG_TOKEN);
  });

  it('names the missing agent command and the config key that fixes it', async () => {
    const dir = tempDir('factory-doctor-');
    dirs.push(dir);
    const missing = path.join(dir, 'no-such-claude');
    const r = await doctor({ ...baseConfig(dir), agent: { command: missing } }, { GITHUB_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    const agent = line(r.out, 'agent');
    expect(agent).toMatch(/^FAIL .*agent command ".*no-such-claude" not found/);
    expect(agent).toContain('set agent.command in config.yml');

    const byName = await doctor({ ...baseConfig(dir), agent: { command: 'claude-not-installed-here' } }, { GITHUB_TOKEN: TOKEN });
    expect(byName.code).toBe(1);
    expect(line(byName.out, 'agent')).toMatch(/^FAIL .*"claude-not-installed-here" not found on PATH.*set agent\.command/);
  });

  it('fails a classic token without the repo scope', async () => {
    const narrow = new FakeGitHub({ validToken: TOKEN, scopes: 'read:org, gist' });
    const url = await narrow.start();
    try {
      const dir = tempDir('factory-doctor-');
      dirs.push(dir);
      const r = await doctor({ ...baseConfig(dir), github: { api_url: url } }, { GITHUB_TOKEN: TOKEN });
      expect(r.code).toBe(1);
      expect(line(r.out, 'github')).toMatch(/^FAIL .*lacks the repo scope \(scopes: read:org, gist\)/);
    } finally {
      await narrow.stop();
    }
  });

  it('reports an invalid config with the key and exits 1', async () => {
    const dir = tempDir('factory-doctor-');
    dirs.push(dir);
    const r = await doctor({ ...baseConfig(dir), max_concurrent_agents: 0 }, { GITHUB_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    expect(line(r.out, 'config')).toMatch(/^FAIL .*max_concurrent_agents/);
  });

  it('checks the Telegram token through getMe without printing it', async () => {
    const telegram = new FakeTelegram({ token: TG_TOKEN });
    const url = await telegram.start();
    try {
      const dir = tempDir('factory-doctor-');
      dirs.push(dir);
      const config = { ...baseConfig(dir), telegram: { api_root: url, chat_id: '1234' } };
      const good = await doctor(config, { GITHUB_TOKEN: TOKEN, TELEGRAM_BOT_TOKEN: TG_TOKEN });
      expect(line(good.out, 'telegram')).toMatch(/^ok .*@factory_test_bot/);
      const bad = await doctor(config, { GITHUB_TOKEN: TOKEN, TELEGRAM_BOT_TOKEN: `${TG_TOKEN}-revoked` });
      expect(bad.code).toBe(1);
      expect(line(bad.out, 'telegram')).toMatch(/^FAIL .*Telegram rejected TELEGRAM_BOT_TOKEN/);
    } finally {
      await telegram.stop();
    }
  });

  it('never printed a secret', () => {
    expect(outputs.length).toBeGreaterThan(5);
    for (const out of outputs) {
      for (const secret of [TOKEN, WRONG_TOKEN, TG_TOKEN, `${TG_TOKEN}-revoked`]) expect(out).not.toContain(secret);
    }
  });
});
