import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Api, TelegramApiError } from 'node-telegram-bot-api';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_CLAUDE_PATH, assistantTexts, claudeArgs, parseStreamJson, readFakeClaudeLog, resultEvent } from './fakes/claude-helpers.js';
import {
  FakeGitHub,
  FakeOpenAI,
  FakePlane,
  FakeServer,
  FakeTelegram,
  cosineSimilarity,
  embedText,
  issueEvent,
  planeStateId,
  pollUntil,
  signGitHubWebhook,
  signPlaneWebhook,
} from './fakes/http/index.js';

let dir = '';
let work = '';
let env: Record<string, string> = {};

function run(prompt: string, extra: string[] = [], moreEnv: Record<string, string> = {}) {
  return execa(FAKE_CLAUDE_PATH, claudeArgs(prompt, extra), { cwd: work, env: { ...env, ...moreEnv }, reject: false });
}

function fencedJson(text: string): { approved: boolean; issues: unknown[] } {
  const m = /```json\n([\s\S]*?)\n```/.exec(text);
  if (!m?.[1]) throw new Error(`no json block in ${text}`);
  return JSON.parse(m[1]) as { approved: boolean; issues: unknown[] };
}

/** State letter from /proc/<pid>/stat, or undefined once the process is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

describe('fake claude CLI', () => {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fake-claude-test-'));
    work = join(dir, 'worktree');
    mkdirSync(work);
    env = { FAKE_CLAUDE_LOG: join(dir, 'log.jsonl'), FAKE_CLAUDE_STATE_DIR: join(dir, 'state'), FACTORY_TASK_ID: 'task-1' };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('success: edits a file, streams init/tool/result events and logs the invocation', async () => {
    const r = await run('Do the thing [fake:success learn=prefer_small_commits]', ['--append-system-prompt', 'sys']);
    expect(r.exitCode).toBe(0);
    const events = parseStreamJson(r.stdout);
    expect(events[0]).toMatchObject({ type: 'system', subtype: 'init', cwd: work, model: 'fake-model', permissionMode: 'default' });
    const sid = events[0]?.session_id as string;
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    expect(events.some((e) => JSON.stringify(e).includes('"type":"tool_use"') && JSON.stringify(e).includes('"name":"Edit"'))).toBe(true);
    expect(events.some((e) => e.type === 'user' && JSON.stringify(e).includes('"tool_result"'))).toBe(true);
    const res = resultEvent(r.stdout);
    expect(res).toMatchObject({ subtype: 'success', is_error: false, session_id: sid, total_cost_usd: 0.0123 });
    expect(res?.usage).toEqual({ input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 10, cache_creation_input_tokens: 5 });
    const lines = String(res?.result).split('\n');
    expect(lines[0]).toBe('Implemented the change.');
    expect(JSON.parse(lines[1] ?? '')).toEqual({ type: 'learning', content: 'prefer small commits' });
    expect(readFileSync(join(work, 'FAKE_CHANGE.md'), 'utf8')).toMatch(/task-1 at \d{4}-/);
    const [rec] = readFakeClaudeLog(env.FAKE_CLAUDE_LOG ?? '');
    expect(rec).toMatchObject({ scenario: 'success', session_id: sid, resumed: false, cwd: work });
    expect(rec?.argv).toContain('--append-system-prompt');
    expect(rec?.env.FACTORY_TASK_ID).toBe('task-1');
    expect(rec?.env.names).toContain('FAKE_CLAUDE_LOG');
  });

  it('picks type-specific directives over generic ones, then FAKE_CLAUDE_SCENARIO', async () => {
    const prompt = 'x [fake:noop] [fake:reviewer=review verdicts=reject]';
    await run(prompt, [], { FACTORY_AGENT_TYPE: 'reviewer' });
    await run(prompt, [], { FACTORY_AGENT_TYPE: 'coder' });
    await run('no directive', [], { FAKE_CLAUDE_SCENARIO: 'noop' });
    await run('no directive');
    const recs = readFakeClaudeLog(env.FAKE_CLAUDE_LOG ?? '');
    expect(recs.map((x) => x.scenario)).toEqual(['review', 'noop', 'noop', 'success']);
    expect(recs[0]?.args).toEqual({ _: [], verdicts: 'reject' });
  });

  it('flood mb=1 writes at least 1 MiB of events then a result', async () => {
    const r = await run('[fake:flood mb=1]');
    expect(r.exitCode).toBe(0);
    expect(Buffer.byteLength(r.stdout)).toBeGreaterThanOrEqual(1024 * 1024);
    const events = parseStreamJson(r.stdout);
    expect(events.length).toBeGreaterThan(60);
    expect(events.at(-1)).toMatchObject({ type: 'result', is_error: false });
  });

  it('crash exits non-zero with stderr and no result', async () => {
    const r = await run('[fake:crash]');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('fatal: simulated crash');
    expect(resultEvent(r.stdout)).toBeUndefined();
    expect((await run('[fake:crash code=7]')).exitCode).toBe(7);
  });

  it('error-result and usage-limit', async () => {
    const e = await run('[fake:error-result]');
    expect(e.exitCode).toBe(1);
    expect(resultEvent(e.stdout)).toMatchObject({ is_error: true, subtype: 'error_during_execution', result: 'Simulated agent error' });
    const first = await run('[fake:usage-limit reset=1700000000]');
    expect(first.exitCode).toBe(1);
    expect(resultEvent(first.stdout)).toMatchObject({ is_error: true, result: 'Claude AI usage limit reached|1700000000' });
    const second = await run('[fake:usage-limit reset=1700000000]');
    expect(second.exitCode).toBe(0);
    expect(resultEvent(second.stdout)?.is_error).toBe(false);
  });

  it('clarify asks, then uses the answer on --resume', async () => {
    const first = await run('Build it [fake:clarify question=Which_DB?]');
    expect(first.exitCode).toBe(0);
    const res = resultEvent(first.stdout);
    const q = String(res?.result)
      .split('\n')
      .find((l) => l.includes('clarification_needed'));
    expect(JSON.parse(q ?? '')).toEqual({ type: 'clarification_needed', question: 'Which DB?', options: ['postgres', 'sqlite'] });
    expect(existsSync(join(work, 'FAKE_CHANGE.md'))).toBe(false);
    const sid = String(res?.session_id);
    const second = await run('Answer: sqlite\n[fake:clarify]', ['--resume', sid]);
    expect(resultEvent(second.stdout)).toMatchObject({ session_id: sid, is_error: false });
    expect(readFileSync(join(work, 'FAKE_CHANGE.md'), 'utf8')).toContain('Answer used: sqlite');
    expect(readFakeClaudeLog(env.FAKE_CLAUDE_LOG ?? '').map((x) => x.resumed)).toEqual([false, true]);
  });

  it('clarify rounds=2 asks twice before finishing', async () => {
    const asked = async (extra: string[]) =>
      String(resultEvent((await run('[fake:clarify rounds=2] ANSWER: pg', extra)).stdout)?.result).includes('clarification_needed');
    expect(await asked([])).toBe(true);
    expect(await asked(['--resume', 's1'])).toBe(true);
    expect(await asked(['--resume', 's1'])).toBe(false);
  });

  it('review follows the verdict sequence per workflow, repeating the last one', async () => {
    const verdicts: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await run('[fake:review verdicts=reject,reject,approve]', [], { FACTORY_WORKFLOW_ID: 'wf-1' });
      verdicts.push(fencedJson(String(resultEvent(r.stdout)?.result)).approved);
    }
    expect(verdicts).toEqual([false, false, true, true]);
    const other = await run('[fake:review verdicts=reject,approve]', [], { FACTORY_WORKFLOW_ID: 'wf-2' });
    expect(fencedJson(String(resultEvent(other.stdout)?.result)).issues[0]).toMatchObject({ severity: 'major', file: 'FAKE_CHANGE.md' });
    expect(existsSync(join(work, 'FAKE_CHANGE.md'))).toBe(false);
  });

  it('message and handoff lines appear in assistant text', async () => {
    const m = parseStreamJson((await run('[fake:message to=coder type=question content=Why_so?]')).stdout);
    const line = assistantTexts(m)
      .join('\n')
      .split('\n')
      .find((l) => l.startsWith('{"type":"message"'));
    expect(JSON.parse(line ?? '')).toEqual({ type: 'message', to: 'coder', content: 'Why so?', message_type: 'question' });
    const h = resultEvent((await run('[fake:handoff]')).stdout);
    const hl = String(h?.result)
      .split('\n')
      .find((l) => l.includes('handoff_output'));
    expect(JSON.parse(hl ?? '')).toMatchObject({ summary: 'Implemented X', files_changed: ['FAKE_CHANGE.md'] });
  });

  it('SIGTERM ends a hanging run with 143; ignore-sigterm survives it', async () => {
    const sub = execa(FAKE_CLAUDE_PATH, claudeArgs('[fake:hang]'), { cwd: work, env, reject: false });
    let out = '';
    sub.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await pollUntil(() => out.includes('"type":"assistant"'), 5000, 'first assistant line');
    sub.kill('SIGTERM');
    expect((await sub).exitCode).toBe(143);

    const stubborn = execa(FAKE_CLAUDE_PATH, claudeArgs('[fake:ignore-sigterm]'), { cwd: work, env, reject: false });
    let out2 = '';
    stubborn.stdout?.on('data', (c: Buffer) => {
      out2 += c.toString();
    });
    await pollUntil(() => out2.includes('"type":"assistant"'), 5000, 'first assistant line');
    stubborn.kill('SIGTERM');
    const early = await Promise.race([stubborn.then(() => 'exited'), new Promise((r) => setTimeout(() => r('alive'), 300))]);
    expect(early).toBe('alive');
    stubborn.kill('SIGKILL');
    expect((await stubborn).signal).toBe('SIGKILL');
  });

  it('grandchild shares the process group and dies with a group kill', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    const sub = execa(FAKE_CLAUDE_PATH, claudeArgs('[fake:grandchild]'), {
      cwd: work,
      env: { ...env, FAKE_CLAUDE_PIDFILE: pidFile },
      reject: false,
      detached: true,
    });
    const gpid = await pollUntil(
      () => {
        const txt = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : '';
        return txt ? Number(txt) : undefined;
      },
      5000,
      'grandchild pid file',
    );
    // The pid file is written just before the log record: wait for the record rather than race it.
    const rec = await pollUntil(
      () => readFakeClaudeLog(env.FAKE_CLAUDE_LOG ?? '').find((r) => r.grandchild_pid !== undefined),
      5000,
      'log record',
    );
    expect(rec.grandchild_pid).toBe(gpid);
    expect(procState(gpid)).toMatch(/[RSD]/);
    process.kill(-(sub.pid ?? 0), 'SIGKILL');
    expect((await sub).signal).toBe('SIGKILL');
    await pollUntil(() => procState(gpid) === undefined || procState(gpid) === 'Z', 5000, 'grandchild to die');
  });
});

describe('FakeServer base', () => {
  it('routes params, injects failures, and waits for requests', async () => {
    const s = new FakeServer().route('GET', '/things/:id', (r) => ({ json: { id: r.params.id, q: r.query.x } }));
    const base = await s.start();
    try {
      expect(await (await fetch(`${base}/things/7?x=1`)).json()).toEqual({ id: '7', q: '1' });
      s.failNext(1, 503);
      expect((await fetch(`${base}/things/8`)).status).toBe(503);
      expect((await fetch(`${base}/things/8`)).status).toBe(200);
      s.setDown(true);
      expect((await fetch(`${base}/things/9`)).status).toBe(500);
      s.setDown(false);
      expect(s.requests.filter((r) => r.failed).map((r) => r.path)).toEqual(['/things/8', '/things/9']);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      setTimeout(() => void fetch(`${base}/things/late`, { method: 'GET' }), 50);
      expect((await s.waitFor((r) => r.path === '/things/late')).method).toBe('GET');
      await expect(s.waitFor((r) => r.path === '/never', 100)).rejects.toThrow(/Timed out/);
    } finally {
      await s.stop();
    }
  });
});

describe('FakeGitHub', () => {
  it('pull requests, checks, comments, auth and webhook signing', async () => {
    const gh = new FakeGitHub({ validToken: 'ghp_good' });
    const base = await gh.start();
    const call = (method: string, path: string, body?: unknown, token = 'ghp_good') =>
      fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    try {
      const user = await call('GET', '/user');
      expect(user.headers.get('x-oauth-scopes')).toBe('repo');
      expect(await user.json()).toMatchObject({ login: 'factory-bot' });
      expect((await call('GET', '/user', undefined, 'bad')).status).toBe(401);
      expect(await (await call('GET', '/repos/acme/app')).json()).toMatchObject({ default_branch: 'main', full_name: 'acme/app' });

      const pr = { title: 'T', body: 'B', head: 'factory/task-1', base: 'main' };
      const created = await call('POST', '/repos/acme/app/pulls', pr);
      expect(created.status).toBe(201);
      const c = (await created.json()) as { number: number; html_url: string; head: { sha: string } };
      expect(c.html_url).toBe(`https://github.example/acme/app/pull/${c.number}`);
      const dup = await call('POST', '/repos/acme/app/pulls', pr);
      expect(dup.status).toBe(422);
      expect(JSON.stringify(await dup.json())).toContain('A pull request already exists');
      const list = (await (await call('GET', '/repos/acme/app/pulls?head=acme:factory/task-1&state=open')).json()) as unknown[];
      expect(list).toHaveLength(1);
      await call('PATCH', `/repos/acme/app/pulls/${c.number}`, { title: 'T2' });
      gh.setHeadSha(c.number, 'abc123');
      gh.setPrState(c.number, 'closed', true);
      expect(await (await call('GET', `/repos/acme/app/pulls/${c.number}`)).json()).toMatchObject({
        title: 'T2',
        state: 'closed',
        merged: true,
        head: { sha: 'abc123' },
      });

      gh.setCheckRuns('abc123', [{ name: 'ci', conclusion: 'failure', output: { title: 'Tests failed', summary: 's', text: 't' } }]);
      const checks = (await (await call('GET', '/repos/acme/app/commits/abc123/check-runs')).json()) as {
        total_count: number;
        check_runs: unknown[];
      };
      expect(checks.total_count).toBe(1);
      expect(checks.check_runs[0]).toMatchObject({ name: 'ci', status: 'completed', conclusion: 'failure' });
      expect(await (await call('GET', '/repos/acme/app/commits/abc123/status')).json()).toMatchObject({ state: 'pending', statuses: [] });

      gh.addReview(c.number, { state: 'CHANGES_REQUESTED', body: 'fix it', user: { login: 'bob' } });
      gh.addReviewComment(c.number, { path: 'a.ts', line: 3, body: 'here', user: { login: 'bob' } });
      expect(await (await call('GET', `/repos/acme/app/pulls/${c.number}/reviews`)).json()).toHaveLength(1);
      expect(await (await call('GET', `/repos/acme/app/pulls/${c.number}/comments`)).json()).toHaveLength(1);
      const posted = await call('POST', `/repos/acme/app/issues/${c.number}/comments`, { body: 'hello' });
      expect(posted.status).toBe(201);
      expect(await (await call('GET', `/repos/acme/app/issues/${c.number}/comments`)).json()).toMatchObject([{ body: 'hello' }]);

      const { headers, body } = signGitHubWebhook('s3cret', 'pull_request', { action: 'closed' });
      expect(headers['X-Hub-Signature-256']).toBe(`sha256=${createHmac('sha256', 's3cret').update(body).digest('hex')}`);
      expect(headers['X-GitHub-Event']).toBe('pull_request');
    } finally {
      await gh.stop();
    }
  });
});

describe('FakePlane', () => {
  it('work items, states, comments, auth and webhooks', async () => {
    const plane = new FakePlane({ apiKey: 'plane-key' });
    const base = await plane.start();
    const prefix = `${base}/api/v1/workspaces/ws/projects/p1`;
    const call = (method: string, path: string, body?: unknown, key = 'plane-key') =>
      fetch(`${prefix}${path}`, {
        method,
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    try {
      expect((await call('GET', '/states/', undefined, 'wrong')).status).toBe(401);
      const states = (await (await call('GET', '/states/')).json()) as { results: Array<{ id: string; name: string }> };
      expect(states.results.find((s) => s.name === 'In Progress')?.id).toBe(planeStateId('In Progress'));
      const created = await call('POST', '/work-items/', { name: 'Add login', description_html: '<p>x</p>' });
      expect(created.status).toBe(201);
      const item = (await created.json()) as { id: string; sequence_id: number };
      expect(item.sequence_id).toBe(1);
      await call('PATCH', `/work-items/${item.id}/`, { state: plane.stateId('In Progress') });
      await call('PATCH', `/work-items/${item.id}/`, { state: plane.stateId('In Review') });
      expect(plane.stateHistory(item.id)).toEqual([plane.stateId('In Progress'), plane.stateId('In Review')]);
      const posted = await call('POST', `/work-items/${item.id}/comments/`, { comment_html: '<p>bot</p>' });
      expect(await posted.json()).toMatchObject({ actor: 'bot-user', created_at: expect.stringMatching(/Z$/) });
      plane.addUserComment(item.id, '<p>human</p>');
      const page = (await (await call('GET', `/work-items/${item.id}/comments/`)).json()) as {
        results: Array<{ comment_html: string; actor: string }>;
        next_page_results: boolean;
        total_results: number;
      };
      expect(page.results.map((c) => c.actor)).toEqual(['human-1', 'bot-user']);
      expect(page).toMatchObject({ next_page_results: false, total_results: 2 });
      expect(plane.comments(item.id).map((c) => c.comment_html)).toEqual(['<p>bot</p>', '<p>human</p>']);

      const payload = issueEvent({ id: item.id, stateName: 'Todo', labels: ['factory'] });
      expect(payload).toMatchObject({
        event: 'issue',
        action: 'updated',
        activity: { field: 'state_id', new_value: planeStateId('Todo') },
      });
      const signed = signPlaneWebhook('whsec', payload);
      expect(signed.body).toBe(JSON.stringify(payload));
      expect(signed.headers['x-plane-signature']).toBe(createHmac('sha256', 'whsec').update(signed.body).digest('hex'));
      expect(signed.headers['x-plane-event']).toBe('issue');
    } finally {
      await plane.stop();
    }
  });
});

describe('FakeTelegram with node-telegram-bot-api', () => {
  it('sendMessage (urlencoded), long-poll getUpdates, auth and outage', async () => {
    const tg = new FakeTelegram({ token: '42:ABC' });
    const base = await tg.start();
    try {
      const api = new Api('42:ABC', { apiRoot: base });
      expect((await api.getMe()).username).toBe(tg.bot.username);
      const sent = await api.sendMessage({ chat_id: 42, text: 'hi', reply_parameters: { message_id: 5 } });
      expect(sent.message_id).toBe(tg.sent[0]?.message_id);
      expect(tg.sent[0]).toMatchObject({ chat_id: 42, text: 'hi', reply_to_message_id: 5 });
      expect(String(tg.requests.at(-1)?.headers['content-type'])).toContain('x-www-form-urlencoded');

      const polling = api.getUpdates({ offset: 0, timeout: 2 });
      await tg.waitFor((r) => r.path.endsWith('/getUpdates'));
      tg.pushReply(sent.message_id, 'use postgres');
      const updates = await polling;
      expect(updates).toHaveLength(1);
      const u0 = updates[0];
      expect(u0 && 'message' in u0 ? u0.message : undefined).toMatchObject({
        text: 'use postgres',
        chat: { id: 42 },
        reply_to_message: { message_id: sent.message_id },
      });
      const next = await api.getUpdates({ offset: (updates[0]?.update_id ?? 0) + 1, timeout: 0 });
      expect(next).toEqual([]);

      await expect(new Api('1:bad', { apiRoot: base }).getMe()).rejects.toBeInstanceOf(TelegramApiError);
      tg.setDown(true);
      await expect(new Api('42:ABC', { apiRoot: base, maxRetries: 0 }).getMe()).rejects.toThrow();
      tg.setDown(false);
    } finally {
      await tg.stop();
    }
  });
});

describe('FakeOpenAI with the openai SDK', () => {
  it('returns deterministic embeddings (float and base64) with synonyms', async () => {
    const oai = new FakeOpenAI({ apiKey: 'sk-test', synonyms: { database: 'postgres' } });
    const base = await oai.start();
    try {
      const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 0 });
      const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a b'], encoding_format: 'float' });
      expect(r.data[0]?.embedding).toEqual(embedText('a b', 16));
      expect(r.data[0]?.embedding).toHaveLength(16);
      const b64 = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['database', 'postgres', 'cats'] });
      const [db, pg, cats] = b64.data.map((d) => Array.from(d.embedding));
      expect(cosineSimilarity(db ?? [], pg ?? [])).toBeCloseTo(1, 5);
      expect(cosineSimilarity(db ?? [], cats ?? [])).toBeLessThan(0.99);
      expect(oai.calls.at(-1)?.encoding_format).toBe('base64');
      const bad = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${base}/v1`, maxRetries: 0 });
      await expect(bad.embeddings.create({ model: 'm', input: 'x' })).rejects.toMatchObject({ status: 401 });
    } finally {
      await oai.stop();
    }
  });
});
