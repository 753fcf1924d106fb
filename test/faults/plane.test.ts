// Plane misbehaving while tasks run: gone (connection refused) and rate limited (429 with
// retry-after). Every task still runs once and finishes; afterwards each task has one Plane issue
// whose state changes and comments arrived once each, in the order they were queued.
import { afterEach, describe, expect, it } from 'vitest';
import { FakePlane, planeStateId } from '../fakes/http/index.js';
import { allDelivered, connectionRefused, runFaultScenario, startFaultFactory, type FaultFactory, type FaultSwitch } from './harness.js';

const PLANE_KEY = 'plane_api_key_faults_123';
const STATES = {
  queued: planeStateId('Todo'),
  in_progress: planeStateId('In Progress'),
  in_review: planeStateId('In Review'),
  done: planeStateId('Done'),
  failed: planeStateId('Backlog'),
  cancelled: planeStateId('Cancelled'),
};

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

type PlaneOp = { op: 'create' | 'state' | 'comment'; taskId: number; state?: keyof typeof STATES; html?: string };

/** Per task: one issue, and on it exactly the queued states and comments, in queue order. */
async function expectPlaneInStep(f: FaultFactory, plane: FakePlane): Promise<void> {
  const rows = await allDelivered(f, 'plane');
  const ops = rows.map((r) => JSON.parse(r.payload) as PlaneOp);
  const taskIds = [...new Set(ops.map((o) => o.taskId))];
  expect(taskIds.length).toBe(2);
  for (const id of taskIds) {
    const issues = [...plane.issues.values()].filter((i) => (i as { external_id?: string }).external_id === `factory-task-${id}`);
    expect(issues, `Plane issues of task ${id}`).toHaveLength(1);
    const mine = ops.filter((o) => o.taskId === id);
    expect(plane.stateHistory(issues[0]!.id)).toEqual(mine.filter((o) => o.op === 'state').map((o) => STATES[o.state!]));
    expect(plane.comments(issues[0]!.id).map((c) => c.comment_html)).toEqual(mine.filter((o) => o.op === 'comment').map((o) => o.html));
    expect(mine.filter((o) => o.op === 'comment').length, `task ${id} has comments to check`).toBeGreaterThan(0);
  }
}

async function scenario(plane: FakePlane, fault: FaultSwitch): Promise<void> {
  const url = await plane.start();
  cleanup.push(() => plane.stop());
  const f = await startFaultFactory(
    {
      plane: {
        base_url: url,
        workspace_slug: 'ws',
        project_id: 'project-1',
        default_repo: 'acme/web',
        states: STATES,
        poll_interval_seconds: 3600,
      },
    },
    { PLANE_API_KEY: PLANE_KEY },
  );
  cleanup.push(() => f.stop());
  await runFaultScenario(f, fault, 'plane', (f) => expectPlaneInStep(f, plane));
}

describe('fault: Plane', () => {
  it('Plane down (connection refused)', async () => {
    const plane = new FakePlane({ apiKey: PLANE_KEY });
    await scenario(plane, connectionRefused(plane, 'plane'));
  });

  it('429 Too Many Requests with retry-after', async () => {
    const plane = new FakePlane({ apiKey: PLANE_KEY });
    await scenario(plane, {
      on: () => plane.setFault({ status: 429, headers: { 'retry-after': '2' }, json: { detail: 'Request was throttled.' } }),
      off: () => plane.setFault(null),
      hit: () => plane.requests.filter((r) => r.failed).length >= 2,
    });
    // retry-after was honoured: the same request (method, path, body) never came again within 2 s.
    const same = (a: { method: string; path: string; rawBody: string }, b: typeof a) =>
      a.method === b.method && a.path === b.path && a.rawBody === b.rawBody;
    for (const t of plane.requests.filter((r) => r.failed)) {
      const next = plane.requests.find((r) => r.at > t.at && same(r, t));
      if (next) expect(next.at - t.at, `${t.method} ${t.path} retried too soon`).toBeGreaterThanOrEqual(1900);
    }
  });
});
