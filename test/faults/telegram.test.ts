// Telegram misbehaving while tasks run: rate limited (429 with retry_after), failing (5xx), gone
// (connection refused) and stuck (accepts, never answers). In each: /health stays fast, the watchdog
// fires on time, the tasks finish once, and afterwards every notice arrives once, in order.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeTelegram } from '../fakes/http/index.js';
import { allDelivered, connectionRefused, runFaultScenario, startFaultFactory, type FaultFactory, type FaultSwitch } from './harness.js';

const CHAT = '42';
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function startWithTelegram(tg: FakeTelegram): Promise<FaultFactory> {
  const f = await startFaultFactory(
    { telegram: { api_root: tg.url, chat_id: CHAT, poll_replies: false } },
    { TELEGRAM_BOT_TOKEN: tg.token },
  );
  cleanup.push(() => f.stop());
  return f;
}

/** Every queued notice reached the chat exactly once, in the order it was queued. */
async function expectDeliveredOnceInOrder(f: FaultFactory, tg: FakeTelegram): Promise<void> {
  const rows = await allDelivered(f, 'telegram');
  const queued = rows.map((r) => (JSON.parse(r.payload) as { text: string }).text);
  const sent = tg.sent.filter((m) => String(m.chat_id) === CHAT).map((m) => m.text);
  expect(sent).toEqual(queued);
  // Both tasks' notices are among them: started and finished, for each task.
  expect(queued.filter((t) => t.startsWith('🔧 Started')).length).toBeGreaterThanOrEqual(2);
}

async function scenario(tg: FakeTelegram, fault: FaultSwitch): Promise<void> {
  await tg.start();
  cleanup.push(() => tg.stop());
  const f = await startWithTelegram(tg);
  await runFaultScenario(f, fault, 'telegram', (f) => expectDeliveredOnceInOrder(f, tg));
}

describe('fault: Telegram', () => {
  it('429 Too Many Requests with retry_after', async () => {
    const tg = new FakeTelegram();
    const retryAfter = { ok: false, error_code: 429, description: 'Too Many Requests: retry after 2', parameters: { retry_after: 2 } };
    await scenario(tg, {
      on: () => tg.setFault({ status: 429, json: retryAfter, headers: { 'retry-after': '2' } }),
      off: () => tg.setFault(null),
      hit: () => tg.requests.filter((r) => r.failed).length >= 2,
    });
    // retry_after was honoured: no second attempt came sooner than it allowed.
    const failed = tg.requests.filter((r) => r.path.endsWith('/sendMessage'));
    for (let i = 1; i < failed.length && failed[i]!.failed; i++) expect(failed[i]!.at - failed[i - 1]!.at).toBeGreaterThanOrEqual(1900);
  });

  it('5xx answers', async () => {
    const tg = new FakeTelegram();
    await scenario(tg, {
      on: () => tg.setFault({ status: 502 }),
      off: () => tg.setFault(null),
      hit: () => tg.requests.filter((r) => r.failed).length >= 2,
    });
  });

  it('connection refused', async () => {
    const tg = new FakeTelegram();
    await scenario(tg, connectionRefused(tg, 'telegram'));
  });

  it('a server that accepts and never answers', async () => {
    const tg = new FakeTelegram();
    await scenario(tg, {
      on: () => tg.setHanging(true),
      off: () => tg.setHanging(false),
      hit: () => tg.heldCount >= 1,
    });
  });
});
