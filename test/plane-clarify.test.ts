import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentEnv, gitOut, type AgentEnv } from './agent-harness.js';
import { FakePlane, FakeTelegram, planeLabelId, planeStateId, signPlaneWebhook } from './fakes/http/index.js';
import { issueEvent, commentEvent } from './fakes/http/plane.js';
import { waitFor } from './helpers.js';

const SECRET = 'plane-webhook-secret-123';
const PLANE_KEY = 'plane_api_key_abcdef';
const TG_TOKEN = '123456:TEST-TOKEN';
const STATES = {
  queued: planeStateId('Todo'),
  in_progress: planeStateId('In Progress'),
  in_review: planeStateId('In Review'),
  done: planeStateId('Done'),
  failed: planeStateId('Backlog'),
  cancelled: planeStateId('Cancelled'),
};

describe('clarification, Plane and Telegram', () => {
  let env: AgentEnv;
  let plane: FakePlane;
  let tg: FakeTelegram;

  beforeAll(async () => {
    plane = new FakePlane({ apiKey: PLANE_KEY });
    tg = new FakeTelegram({ token: TG_TOKEN });
    const planeUrl = await plane.start();
    const tgUrl = await tg.start();
    env = await createAgentEnv({
      env: { PLANE_API_KEY: PLANE_KEY, PLANE_WEBHOOK_SECRET: SECRET, TELEGRAM_BOT_TOKEN: TG_TOKEN },
      overrides: {
        plane: {
          base_url: planeUrl,
          workspace_slug: 'ws',
          project_id: 'project-1',
          default_repo: 'acme/web',
          states: STATES,
          poll_interval_seconds: 3600,
          allowed_members: ['human-1'],
        },
        telegram: { chat_id: '42', api_root: tgUrl, allowed_user_ids: [1, 7] },
        message_board: { forward_types: ['error', 'handoff'] },
      },
    });
  });
  afterAll(async () => {
    await env.stopAll();
    await plane.stop();
    await tg.stop();
  });

  const webhook = (payload: unknown, opts: { secret?: string; path?: string } = {}) => {
    const signed = signPlaneWebhook(opts.secret ?? SECRET, payload);
    return env.app.inject({ method: 'POST', url: opts.path ?? '/webhooks/plane', headers: signed.headers, payload: signed.body });
  };
  const calls = (taskId: number) => env.fakeLog().filter((r) => r.env.FACTORY_TASK_ID === String(taskId));

  it('answers through the API: the agent resumes its session with the answer and finishes', async () => {
    const t = await env.createTask({ title: 'Pick a database', description: 'Store users [fake:clarify question=Which_database?]' });
    const waiting = await env.waitStatus(t.id, ['waiting_for_input', 'failed', 'in_review']);
    expect(waiting.status).toBe('waiting_for_input');
    const ctx = JSON.parse(waiting.clarification_context);
    expect(ctx.pending_question).toBe('Which database?');
    expect(ctx.history).toHaveLength(1);
    // the question reached the board, Telegram and (for an API task, once its issue exists) Plane
    const board = (await env.app.inject({ url: `/api/messages?task_id=${t.id}&message_type=question` })).json();
    expect(board[0].message).toContain('Which database?');
    await tg.waitFor((r) => r.path.endsWith('/sendMessage') && String(r.form?.text ?? '').includes('Which database?'));
    const issueId = await waitFor(async () => (await env.getTask(t.id)).plane_issue_id, { what: 'plane issue created' });
    await waitFor(() => plane.comments(issueId).some((c) => c.comment_html.includes('Which database?')), { what: 'question comment' });

    const answer = await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/answer`, payload: { answer: 'postgres' } });
    expect(answer.statusCode).toBe(200);
    expect(answer.json().status).toBe('queued');
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.error).toBe('');
    expect(done.status).toBe('in_review');
    const [first, second] = calls(t.id);
    expect(second!.resumed).toBe(true);
    expect(second!.argv).toContain('--resume');
    expect(second!.argv[second!.argv.indexOf('--resume') + 1]).toBe(first!.session_id);
    expect(second!.prompt).toContain('postgres');
    const file = gitOut(path.join(env.origins, 'acme', 'web.git'), 'show', `${done.branch_name}:FAKE_CHANGE.md`);
    expect(file).toContain('postgres');
    expect((await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/answer`, payload: { answer: 'again' } })).statusCode).toBe(409);
  });

  it('handles two rounds of questions (upstream /resume route, then /answer)', async () => {
    const t = await env.createTask({ title: 'Two questions', description: '[fake:clarify rounds=2]' });
    await env.waitStatus(t.id, 'waiting_for_input');
    const r1 = await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/resume`, payload: { response: 'first answer' } });
    expect(r1.statusCode).toBe(200);
    await waitFor(
      async () => {
        const x = await env.getTask(t.id);
        return x.status === 'waiting_for_input' && JSON.parse(x.clarification_context).history.length === 2;
      },
      { what: 'second question' },
    );
    expect((await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/resume`, payload: {} })).statusCode).toBe(400);
    await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/answer`, payload: { answer: 'second answer' } });
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    const ctx = JSON.parse(done.clarification_context);
    expect(ctx.history.map((h: { response: string }) => h.response)).toEqual(['first answer', 'second answer']);
    expect(calls(t.id).at(-1)!.prompt).toMatch(/first answer[\s\S]*second answer/);
  });

  it('creates one task from a signed Plane webhook, even when delivered three times, and answers from a Plane comment', async () => {
    const issue = plane.addIssue({ name: 'From Plane', stateName: 'Todo' });
    const payload = issueEvent({
      id: issue.id,
      name: 'From Plane',
      description_html: '<p>Build it &amp; ship <b>[fake:clarify]</b></p>',
      stateName: 'Todo',
      labels: ['repo:acme/web', 'coder'],
      sequence_id: 7,
    });
    const results = [];
    for (let i = 0; i < 3; i++) results.push((await webhook(payload)).json());
    expect(results[0]).toMatchObject({ status: 'task_created' });
    expect(results.slice(1).map((r) => r.status)).toEqual(['already_exists', 'already_exists']);
    const tasks = (await env.app.inject({ url: '/api/tasks?limit=500' }))
      .json()
      .filter((t: { plane_issue_id: string }) => t.plane_issue_id === issue.id);
    expect(tasks).toHaveLength(1);
    const id = tasks[0].id;
    expect(tasks[0]).toMatchObject({ repo: 'acme/web', agent_type: 'coder', plane_sequence_id: 7 });
    expect(tasks[0].description).toBe('Build it & ship [fake:clarify]');
    await env.waitStatus(id, 'waiting_for_input');
    // The issue text reached the agent fenced as outside data.
    expect(calls(id)[0]!.prompt).toContain(
      '<untrusted-data source="Plane issue description">\nBuild it & ship [fake:clarify]\n</untrusted-data>',
    );
    await waitFor(() => plane.comments(issue.id).some((c) => c.comment_html.includes('needs an answer')), { what: 'question on plane' });
    // our own comment coming back through the webhook is not an answer
    const own = plane.comments(issue.id).find((c) => c.comment_html.includes('needs an answer'))!;
    expect(
      (await webhook(commentEvent({ issueId: issue.id, id: own.id, comment_html: own.comment_html, actor: 'bot-user' }))).json().status,
    ).toBe('ignored');
    const reply = await webhook(commentEvent({ issueId: issue.id, comment_html: '<p>use <i>sqlite</i></p>' }), {
      path: '/api/webhooks/plane',
    });
    expect(reply.json()).toEqual({ status: 'resumed', task_id: id });
    const done = await env.waitStatus(id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    expect(calls(id).at(-1)!.prompt).toContain('use sqlite');
    // state updates arrive in order, and the PR link is commented
    await waitFor(() => plane.stateHistory(issue.id).at(-1) === STATES.in_review, { what: 'in_review state' });
    expect(plane.stateHistory(issue.id)).toEqual([STATES.in_progress, STATES.in_progress, STATES.in_review]);
    await waitFor(() => plane.comments(issue.id).some((c) => c.comment_html.includes(done.pr_url)), { what: 'PR comment' });
  });

  it('reads Plane Cloud (v2) payloads, resolving label ids to names through the API', async () => {
    plane.labels.push(
      { id: planeLabelId('repo:acme/web'), name: 'repo:acme/web', color: '#000000' },
      { id: planeLabelId('researcher'), name: 'researcher', color: '#000000' },
    );
    const issue = plane.addIssue({ name: 'Cloud issue', stateName: 'Todo' });
    const payload = {
      version: 'v2',
      event: 'workitem.updated',
      delivery_id: 'd-1',
      entity_id: issue.id,
      entity_type: 'workitem',
      data: {
        id: issue.id,
        name: 'Cloud issue',
        description_html: '<p>[fake:noop]</p>',
        sequence_id: 9,
        state_id: STATES.queued,
        label_ids: [planeLabelId('repo:acme/web'), planeLabelId('researcher')],
        updated_at: new Date().toISOString(),
        updated_by: 'human-1',
      },
      previous_attributes: { state_id: planeStateId('Backlog') },
    };
    const res = (await webhook(payload)).json();
    expect(res.status).toBe('task_created');
    const task = await env.getTask(res.task_id);
    expect(task).toMatchObject({ repo: 'acme/web', agent_type: 'researcher', plane_issue_id: issue.id, plane_sequence_id: 9 });
    expect((await env.waitStatus(res.task_id, ['done', 'failed'])).status).toBe('done');
  });

  it('picks up an answer from Plane comments by polling when the webhook was missed', async () => {
    const issue = plane.addIssue({ name: 'Polled', stateName: 'Todo' });
    const created = (
      await webhook(issueEvent({ id: issue.id, name: 'Polled', description_html: '<p>[fake:clarify]</p>', stateName: 'Todo' }))
    ).json();
    await env.waitStatus(created.task_id, 'waiting_for_input');
    plane.addUserComment(issue.id, '<p>go with redis</p>');
    await env.wired!.plane.pollWaiting();
    const done = await env.waitStatus(created.task_id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    expect(calls(created.task_id).at(-1)!.prompt).toContain('go with redis');
    // the same comment arriving later by webhook does nothing
    const again = plane.comments(issue.id).find((c) => c.comment_html.includes('redis'))!;
    expect((await webhook(commentEvent({ issueId: issue.id, id: again.id, comment_html: again.comment_html }))).json().status).toBe(
      'ignored',
    );
  });

  it('takes an answer from a Telegram reply to the question', async () => {
    const t = await env.createTask({ title: 'Ask on Telegram', description: '[fake:clarify question=Tabs_or_spaces?]' });
    await env.waitStatus(t.id, 'waiting_for_input');
    const q = await tg.waitForSent((m) => m.text.includes('Tabs or spaces?'));
    tg.pushReply(q.message_id, 'spaces, always', { id: 7, username: 'alice' }, 42);
    const done = await env.waitStatus(t.id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    expect(JSON.parse(done.clarification_context).history[0]).toMatchObject({ response: 'spaces, always', answered_by: 'telegram:@alice' });
  });

  it('reminds once, then fails an unanswered question after the timeout', async () => {
    const t = await env.createTask({ title: 'Nobody answers', description: '[fake:clarify question=Hello?]' });
    await env.waitStatus(t.id, 'waiting_for_input');
    const clarify = env.wired!.clarify;
    await clarify.checkTimeouts(Date.now() + 61 * 60_000);
    await clarify.checkTimeouts(Date.now() + 62 * 60_000);
    await tg.waitForSent((m) => m.text.includes('Still waiting') && m.text.includes('Hello?'));
    expect(tg.sent.filter((m) => m.text.includes('Still waiting') && m.text.includes(`#${t.id}`))).toHaveLength(1);
    await clarify.checkTimeouts(Date.now() + 1441 * 60_000);
    const failed = await env.getTask(t.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/No answer to the agent's question within 1440 minutes: Hello\?/);
  });

  it('refuses bad signatures and malformed payloads', async () => {
    const payload = issueEvent({ name: 'Evil', stateName: 'Todo' });
    const bad = await webhook(payload, { secret: 'wrong-secret' });
    expect(bad.statusCode).toBe(401);
    const unsigned = await env.app.inject({
      method: 'POST',
      url: '/webhooks/plane',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    });
    expect(unsigned.statusCode).toBe(401);
    const body = '{"event": "issue", "data":';
    const signed = signPlaneWebhook(SECRET, {});
    const malformed = await env.app.inject({
      method: 'POST',
      url: '/webhooks/plane',
      headers: {
        ...signed.headers,
        'x-plane-signature': (await import('node:crypto')).createHmac('sha256', SECRET).update(body).digest('hex'),
      },
      payload: body,
    });
    expect(malformed.statusCode).toBe(400);
    expect((await webhook({ event: 'issue' })).statusCode).toBe(400);
    expect((await webhook({ event: 'cycle', data: {} })).json()).toMatchObject({ status: 'ignored' });
    expect((await env.app.inject({ url: '/api/tasks?limit=500' })).json().some((t: { title: string }) => t.title === 'Evil')).toBe(false);
  });

  it('delivers every Plane and Telegram update exactly once after an outage, without blocking the task', async () => {
    plane.setDown(true);
    tg.setDown(true);
    const issue = plane.addIssue({ name: 'Outage', stateName: 'Todo' });
    const created = (
      await webhook(issueEvent({ id: issue.id, name: 'Outage', description_html: '<p>[fake:success]</p>', stateName: 'Todo' }))
    ).json();
    const done = await env.waitStatus(created.task_id, ['in_review', 'failed']);
    expect(done.status).toBe('in_review');
    await waitFor(() => plane.requests.filter((r) => r.failed).length >= 2 && tg.requests.some((r) => r.failed), {
      what: 'failed attempts during outage',
    });
    expect(plane.stateHistory(issue.id)).toEqual([]);
    plane.setDown(false);
    tg.setDown(false);
    await waitFor(async () => (await env.wired!.board.outbox.pending()) === 0, { what: 'outbox drained', timeoutMs: 20_000 });
    expect(plane.stateHistory(issue.id)).toEqual([STATES.in_progress, STATES.in_review]);
    const prComments = plane.comments(issue.id).filter((c) => c.comment_html.includes(done.pr_url));
    expect(prComments).toHaveLength(1);
    expect(tg.sent.filter((m) => m.text.includes(`#${created.task_id}`) && m.text.includes('Started'))).toHaveLength(1);
    expect(tg.sent.filter((m) => m.text.includes(done.pr_url))).toHaveLength(1);
  });

  it('refuses triggers from senders off the allowlists, visibly', async () => {
    const before = (await env.app.inject({ url: '/api/tasks?limit=500' })).json().length;
    const issue = plane.addIssue({ name: 'From a stranger' });
    const refused = (
      await webhook(
        issueEvent({
          id: issue.id,
          name: 'From a stranger',
          description_html: '<p>[fake:success]</p>',
          stateName: 'Todo',
          actorId: 'stranger-9',
        }),
      )
    ).json();
    expect(refused).toMatchObject({ status: 'ignored', reason: expect.stringContaining('plane.allowed_members') });
    expect((await env.app.inject({ url: '/api/tasks?limit=500' })).json()).toHaveLength(before);

    const t = await env.createTask({ title: 'Ask strangers', description: '[fake:clarify question=Who_are_you?]' });
    await env.waitStatus(t.id, 'waiting_for_input');
    const q = await tg.waitForSent((m) => m.text.includes('Who are you?'));
    tg.pushReply(q.message_id, 'let me in', { id: 666, username: 'mallory' }, 42);
    const comment = (
      await webhook(
        commentEvent({
          issueId: await waitFor(async () => (await env.getTask(t.id)).plane_issue_id, { what: 'plane issue' }),
          comment_html: '<p>do it</p>',
          actor: 'stranger-9',
        }),
      )
    ).json();
    expect(comment).toMatchObject({ status: 'ignored' });
    const health = await waitFor(
      async () => {
        const h = (await env.app.inject({ url: '/health' })).json();
        return h.triggers.refused.telegram >= 1 ? h : undefined;
      },
      { what: 'the Telegram refusal' },
    );
    expect(health.triggers.refused.plane).toBeGreaterThanOrEqual(1);
    expect((await env.getTask(t.id)).status).toBe('waiting_for_input'); // nobody answered it
    const board = (await env.app.inject({ url: '/api/messages?message_type=error&limit=100' })).json() as Array<{ message: string }>;
    expect(board.some((m) => m.message.includes('stranger-9') && m.message.includes('plane.allowed_members'))).toBe(true);
    expect(board.some((m) => m.message.includes('telegram.allowed_user_ids'))).toBe(true);
    await env.app.inject({ method: 'POST', url: `/api/tasks/${t.id}/cancel` });
  });
});

describe('Plane issue creation', () => {
  it('a create answered without an issue id is tried again, and the task ends up linked to one issue', async () => {
    const plane = new FakePlane({ apiKey: PLANE_KEY });
    const planeUrl = await plane.start();
    const env = await createAgentEnv({
      env: { PLANE_API_KEY: PLANE_KEY, PLANE_WEBHOOK_SECRET: SECRET },
      overrides: {
        plane: {
          base_url: planeUrl,
          workspace_slug: 'ws',
          project_id: 'project-1',
          default_repo: 'acme/web',
          states: STATES,
          poll_interval_seconds: 3600,
          allowed_members: ['human-1'],
        },
      },
    });
    try {
      plane.createWithoutId = 1;
      const res = await env.app.inject({
        method: 'POST',
        url: '/api/tasks',
        payload: { title: 'Link me to Plane', description: 'x', repo: 'acme/web' },
      });
      const id = res.json().id as number;
      const linked = await waitFor(async () => (await env.getTask(id)).plane_issue_id || undefined, {
        what: 'task linked to a Plane issue',
      });
      const creates = plane.requests.filter((r) => r.method === 'POST' && /\/(work-items|issues)\/$/.test(r.path));
      expect(creates).toHaveLength(2);
      expect(plane.issues.size).toBe(1);
      expect(plane.issues.has(linked)).toBe(true);
    } finally {
      await env.stopAll();
      await plane.stop();
    }
  });
});
