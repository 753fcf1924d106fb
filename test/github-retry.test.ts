// GitHub calls survive GitHub: retries on 5xx, 429 and secondary rate limits (honouring
// retry-after), none for a POST that may have been applied, and no duplicate pull requests.
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitHubClient, GitHubError } from '../src/integrations/github.js';
import { FakeGitHub } from './fakes/http/github.js';

const TOKEN = 'ghp_retrytest0123456789abcdefghijklmnopq';
const pr = { owner: 'acme', repo: 'web', title: 'T', body: 'B', head: 'factory/1-x', base: 'main' };

describe('GitHub client retries', () => {
  const gh = new FakeGitHub({ validToken: TOKEN });
  let client: GitHubClient;
  beforeAll(async () => {
    client = new GitHubClient(await gh.start(), TOKEN, { timeoutMs: 2000, retry: { baseDelayMs: 10, maxWaitMs: 5000 } });
  });
  afterAll(async () => {
    await gh.stop();
  });
  beforeEach(() => {
    gh.clearRequests();
    gh.pulls.clear();
  });

  const posts = () => gh.requests.filter((r) => r.method === 'POST' && r.path === '/repos/acme/web/pulls');

  it('opens a pull request through 502s, once', async () => {
    gh.failNext(3, 502); // the lookup, then two creates
    const opened = await client.openPullRequest(pr);
    expect(opened.number).toBeGreaterThan(0);
    expect(gh.pulls.size).toBe(1);
    expect(gh.requests.filter((r) => r.failed)).toHaveLength(3);
  });

  it('waits out a 429 and a secondary rate limit with retry-after', async () => {
    gh.failNext(1, 429, { 'retry-after': '1' });
    await client.openPullRequest(pr);
    gh.pulls.clear();
    gh.failNext(1, 403, { 'retry-after': '1' });
    await client.openPullRequest({ ...pr, head: 'factory/2-y' });
    expect(gh.requests.filter((r) => r.failed).map((r) => r.status)).toEqual([429, 403]);
    expect(posts().filter((r) => !r.failed)).toHaveLength(2);
  });

  it('reuses the open pull request of the branch instead of creating a second', async () => {
    const first = await client.openPullRequest(pr);
    const again = await client.openPullRequest(pr);
    expect(again.number).toBe(first.number);
    expect(posts()).toHaveLength(1);
  });

  it('does not repeat a comment POST after a 5xx (it may have been applied), and fails clearly', async () => {
    gh.failNext(1, 502);
    await expect(client.comment('acme', 'web', 1, 'hi')).rejects.toMatchObject({ status: 502 });
    expect(gh.requests.filter((r) => r.path.endsWith('/comments'))).toHaveLength(1);
  });

  it('gives up on a wait longer than it may wait, and on a plain 403', async () => {
    gh.failNext(1, 429, { 'retry-after': '3600' });
    await expect(client.getPullRequest('acme', 'web', 1)).rejects.toBeInstanceOf(GitHubError);
    expect(gh.requests).toHaveLength(1);
    gh.clearRequests();
    gh.failNext(1, 403);
    await expect(client.getPullRequest('acme', 'web', 1)).rejects.toMatchObject({ status: 403 });
    expect(gh.requests).toHaveLength(1);
  });
});

describe('GitHub client without an answer', () => {
  it('retries a GET against a host that accepts and never answers, then fails with status 0', async () => {
    // Requests, not connections: fetch may open a spare connection that never carries a request
    // (seen with Node 24's undici), and each attempt is one request.
    let requests = 0;
    const silent = createServer((s) => {
      s.on('data', (d: Buffer) => {
        if (d.toString('latin1').startsWith('GET /repos/acme/web/pulls/1 ')) requests++;
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const client = new GitHubClient(`http://127.0.0.1:${port}`, TOKEN, { timeoutMs: 200, retry: { baseDelayMs: 10, maxAttempts: 3 } });
    try {
      await expect(client.getPullRequest('acme', 'web', 1)).rejects.toMatchObject({ status: 0 });
      expect(requests).toBe(3);
    } finally {
      silent.close();
    }
  });
});
