// Secrets planted in agent output must not leave through any channel: the task API, logs, board,
// handoffs, memory, the event stream, GitHub pull requests, Telegram, the database and the log.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, GITHUB_TOKEN, type AgentEnv } from './agent-harness.js';
import { FakeTelegram } from './fakes/http/telegram.js';
import { waitFor } from './helpers.js';
import { createLogger } from '../src/logger.js';
import { scrub } from '../src/secrets.js';

const TELEGRAM_TOKEN = '7712345678:AAFakeTelegramBotTokenForTests_0123';
const PEM =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----';
/** Shapes nobody configured: an agent may print a token it found in the repository or the machine. */
const UNCONFIGURED = [
  'ghp_0123456789abcdefghijABCDEFGHIJ012345',
  'github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL',
  'sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFG',
  'sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD',
  'xoxb-123456789012-1234567890123-abcdefghijklmnop',
];
const SECRETS = [GITHUB_TOKEN, TELEGRAM_TOKEN, ...UNCONFIGURED, 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ'];
const leakText = `Leaked: ${[GITHUB_TOKEN, TELEGRAM_TOKEN, ...UNCONFIGURED].join(' and ')} and\n${PEM}\nend.`;
/**
 * The fake agent decodes its text arguments; every byte travels percent-encoded so that the task
 * description (user input) holds no secret: what leaks would be the agent's output.
 */
const arg = (s: string) => [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

function leaksIn(where: string, text: string): string[] {
  return SECRETS.filter((s) => text.includes(s)).map((s) => `${where}: ${s.slice(0, 16)}…`);
}

describe('one scrubber on every way out', () => {
  const telegram = new FakeTelegram({ token: TELEGRAM_TOKEN });
  let env: AgentEnv;
  beforeAll(async () => {
    const root = await telegram.start();
    env = await createAgentEnv({
      env: { TELEGRAM_BOT_TOKEN: TELEGRAM_TOKEN },
      overrides: {
        telegram: { api_root: root, chat_id: '42' },
        message_board: { telegram_forward: true, forward_types: ['info', 'question', 'handoff', 'status', 'error'] },
      },
    });
  });
  afterAll(async () => {
    await env?.stopAll();
    await telegram.stop();
  });

  it('keeps planted secrets out of the API, the database, GitHub and Telegram', async () => {
    const pr = await env.createTask({
      title: 'Leaky PR',
      description: `[fake:success result=${arg(leakText)} learn=${arg(`Remember ${UNCONFIGURED[0]} and ${GITHUB_TOKEN}`)}]`,
    });
    const done = await env.createTask({
      title: 'Leaky look',
      agent_type: 'researcher',
      description: `[fake:noop result=${arg(leakText)}]`,
    });
    expect((await env.waitStatus(pr.id, ['in_review', 'failed'])).status).toBe('in_review');
    expect((await env.waitStatus(done.id, ['done', 'failed'])).status).toBe('done');
    await telegram.waitForSent((s) => s.text.includes('Done:') && s.text.includes('Leaked'));

    const found: string[] = [];
    const get = async (url: string) => (await env.app.inject({ url })).body;
    for (const id of [pr.id, done.id]) {
      const task = await get(`/api/tasks/${id}`);
      expect(task).toContain('Leaked'); // the text itself arrived: only the secrets are gone
      expect(task).toContain('[REDACTED]');
      found.push(...leaksIn(`task ${id}`, task));
      found.push(...leaksIn(`logs ${id}`, await get(`/api/tasks/${id}/logs?limit=1000`)));
      found.push(...leaksIn(`handoffs ${id}`, await get(`/api/tasks/${id}/handoffs?direction=from`)));
    }
    found.push(...leaksIn('board', await get('/api/messages?limit=500')));
    const memory = await get('/api/memory?limit=100');
    expect(memory).toContain('Remember');
    found.push(...leaksIn('memory', memory));
    const db = env.services.db;
    for (const table of ['events', 'messages', 'handoffs', 'task_logs']) {
      found.push(...leaksIn(`table ${table}`, JSON.stringify(await db.all(`SELECT * FROM ${table}`))));
    }
    found.push(...leaksIn('stored results', JSON.stringify(await db.all('SELECT result_summary, error FROM tasks'))));
    const prRequest = env.github.requests.find((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls');
    expect(prRequest?.rawBody).toContain('Leaked');
    found.push(...leaksIn('GitHub', env.github.requests.map((r) => r.rawBody).join('\n')));
    found.push(...leaksIn('Telegram', telegram.sent.map((s) => s.text).join('\n')));
    expect(found).toEqual([]);
  });

  it('scrubs fields of log objects, not only message strings', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger({ level: 'info', pretty: false }, sink);
    logger.info({ summary: leakText, nested: { url: `https://x:${UNCONFIGURED[3]}@example.com/` } }, `message with ${GITHUB_TOKEN}`);
    await waitFor(() => lines.length > 0, { what: 'a log line' });
    expect(lines.join('')).toContain('Leaked');
    expect(leaksIn('log', lines.join(''))).toEqual([]);
  });

  it('leaves ordinary text alone', () => {
    const text = 'task-12 on factory/12-fix-sk-learn and skeleton: 123:456 ghost_text';
    expect(scrub(text)).toBe(text);
  });
});
