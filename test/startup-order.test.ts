// With its port taken, Factory must exit before it claims anything: under systemd every failed
// restart would otherwise burn an attempt of a queued task and start an agent nobody watches.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createTestEnv, gatedExecutor, ROOT, tempDir } from './helpers.js';
import { processConfig } from './process-harness.js';

describe('start order', () => {
  it('exits on a busy port without claiming a queued task', async () => {
    const dir = tempDir('factory-order-');
    const seed = await createTestEnv({ dir, start: false, executor: gatedExecutor().executor });
    const task = await seed.services.tasks.create({ title: 'waits', repo: 'acme/web', run: true });
    await seed.close();

    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    const claudeLog = path.join(dir, 'claude-log.jsonl');
    const base = processConfig(dir);
    const config = {
      ...base,
      data_dir: path.join(dir, 'data'),
      server: { port },
      agent: { ...(base.agent as object), env: { FAKE_CLAUDE_LOG: claudeLog } },
    };
    const configPath = path.join(dir, 'config.yml');
    writeFileSync(configPath, stringify(config));
    let out = '';
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/main.ts')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', FACTORY_CONFIG: configPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    blocker.close();
    expect(code, out).not.toBe(0);

    const after = await createTestEnv({ dir, start: false, executor: gatedExecutor().executor });
    try {
      const row = (await after.services.tasks.get(task.id))!;
      expect(row.status).toBe('queued');
      expect(row.attempts).toBe(0);
      expect(existsSync(claudeLog)).toBe(false); // no agent was started
      expect(out).toContain('cannot listen');
    } finally {
      await after.close();
    }
  }, 60_000);
});
