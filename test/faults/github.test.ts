// GitHub misbehaving while tasks run: 502 answers, a secondary rate limit (403 with retry-after) and a
// PR request that is carried out but never answered. The pushed work is never thrown away: the task
// waits in review while its PR is retried (client retries, then the outbox), and in the end there is
// exactly one PR, found again rather than opened twice when an answer was lost.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeGitHub, type RecordedRequest } from '../fakes/http/index.js';
import { GITHUB_TOKEN } from '../agent-harness.js';
import { waitFor } from '../helpers.js';
import { allDelivered, runFaultScenario, startFaultFactory, type FaultFactory, type FaultSwitch, type TaskJson } from './harness.js';

const PR_CHANNEL = 'github.open_pr';
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const isPulls = (r: RecordedRequest) => r.path.endsWith('/pulls');

/** After the fault: the deferred PR was opened once, and the task holds it with its note cleared. */
async function expectOnePr(f: FaultFactory, tasks: { ok: TaskJson }): Promise<void> {
  await allDelivered(f, PR_CHANNEL);
  const t = await waitFor(
    async () => {
      const x = (await f.api('GET', `/api/tasks/${tasks.ok.id}`)).json as TaskJson & { pr_number: number | null };
      return x.pr_number ? x : undefined;
    },
    { what: 'the task to hold its PR' },
  );
  expect(t).toMatchObject({ status: 'in_review', error: '' });
  const prs = [...f.github.pulls.values()];
  expect(prs).toHaveLength(1);
  expect(prs[0]!.head.ref).toBe(t.branch_name);
  expect(t.pr_url).toMatch(new RegExp(`/pull/${prs[0]!.number}$`));
}

async function scenario(fault: (gh: FakeGitHub) => FaultSwitch): Promise<FaultFactory> {
  const github = new FakeGitHub({ validToken: GITHUB_TOKEN });
  const f = await startFaultFactory({ github: { request_timeout_seconds: 2 } }, {}, github);
  cleanup.push(() => f.stop());
  await runFaultScenario(f, fault(github), PR_CHANNEL, expectOnePr, { prMayWait: true });
  return f;
}

describe('fault: GitHub', () => {
  it('502 Bad Gateway on pull requests', async () => {
    await scenario((gh) => ({
      on: () => gh.setFault({ status: 502, when: isPulls }),
      off: () => gh.setFault(null),
      hit: () => gh.requests.filter((r) => r.failed).length >= 4,
    }));
  });

  it('secondary rate limit (403 with retry-after)', async () => {
    const f = await scenario((gh) => ({
      on: () =>
        gh.setFault({
          status: 403,
          when: isPulls,
          headers: { 'retry-after': '1' },
          json: {
            message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
            documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
          },
        }),
      off: () => gh.setFault(null),
      hit: () => gh.requests.filter((r) => r.failed).length >= 2,
    }));
    // retry-after was honoured between the client's own attempts.
    const limited = f.github.requests.filter((r) => r.failed);
    for (let i = 1; i < limited.length; i++) {
      if (limited[i]!.rawBody === limited[i - 1]!.rawBody && limited[i]!.path === limited[i - 1]!.path)
        expect(limited[i]!.at - limited[i - 1]!.at).toBeGreaterThanOrEqual(900);
    }
  });

  it('a PR request that is carried out but never answered', async () => {
    const f = await scenario((gh) => ({
      on: () => gh.setHanging(true, (r) => r.method === 'POST' && isPulls(r), { applied: true }),
      off: () => gh.setHanging(false),
      hit: () => gh.requests.some((r) => r.method === 'POST' && isPulls(r) && r.failed),
    }));
    // No POST was ever answered, yet the task holds the one PR: it was found again by its branch.
    const posts = f.github.requests.filter((r) => r.method === 'POST' && isPulls(r));
    expect(posts.length).toBeGreaterThanOrEqual(1);
    expect(posts.filter((r) => r.status !== undefined)).toEqual([]);
  });
});
