// An idle Factory whose Telegram chat is rate limited for a long time (its head notice waits out
// retry_after with more notices queued behind it) must sleep: near-zero CPU, sampled from /proc.
// Before the outbox fix this spun at ~95 % of a core until Telegram recovered.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeTelegram } from '../fakes/http/index.js';
import { waitFor } from '../helpers.js';
import { createTask, outboxRows, startFaultFactory, waitTaskStatus, type FaultFactory } from './harness.js';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

describe('fault: an idle Factory with a blocked outbox head', () => {
  it('uses next to no CPU while the head waits out a long retry_after', async () => {
    const tg = new FakeTelegram();
    await tg.start();
    cleanup.push(() => tg.stop());
    tg.setFault({
      status: 429,
      headers: { 'retry-after': '60' },
      json: { ok: false, error_code: 429, description: 'Too Many Requests: retry after 60', parameters: { retry_after: 60 } },
    });
    const f: FaultFactory = await startFaultFactory(
      { telegram: { api_root: tg.url, chat_id: '42', poll_replies: false } },
      { TELEGRAM_BOT_TOKEN: tg.token },
    );
    cleanup.push(() => f.stop());
    const t = await createTask(f, 'Quick research', '[fake:noop]');
    await waitTaskStatus(f, t.id, ['done', 'in_review', 'failed']);
    // The head was tried and is waiting; notices of the same chat queue behind it.
    await waitFor(
      () => {
        const rows = outboxRows(f, 'telegram').filter((r) => !r.delivered_at);
        return rows.length >= 2 && rows[0]!.attempts >= 1;
      },
      { what: 'a rate-limited head with notices behind it' },
    );
    const pid = f.child.pid!;
    const before = cpuTicks(pid);
    const started = Date.now();
    // A measurement window, not a wait for something: CPU is sampled over 5 s of wall time.
    await new Promise((r) => setTimeout(r, 5000));
    const seconds = (cpuTicks(pid) - before) / 100; // USER_HZ is 100 on Linux
    const wall = (Date.now() - started) / 1000;
    expect(seconds / wall, `Factory used ${seconds} s of CPU in ${wall} s while idle`).toBeLessThan(0.05);
    expect(outboxRows(f, 'telegram').filter((r) => !r.delivered_at).length).toBeGreaterThanOrEqual(2);
  });
});
