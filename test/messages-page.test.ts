import { messageRoutes } from '../src/server/routes/messages.js';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBoard, type Board } from '../src/board/index.js';
import { buildApp } from '../src/server/app.js';
import { createTestEnv, type TestEnv } from './helpers.js';
import { ARTIFACTS, CHROMIUM, hasChromium, launchBrowser, SKIP, watchErrors } from './browser.js';

// These callbacks run inside the browser; the project compiles without the DOM lib.
declare const window: { innerWidth: number; __pwned?: number };
declare const document: {
  documentElement: { scrollWidth: number };
  querySelectorAll(s: string): ArrayLike<{ classList: { contains(c: string): boolean } }>;
  querySelector(s: string): unknown;
};
declare const sessionStorage: { getItem(k: string): string | null };

if (!hasChromium) console.warn(`messages-page tests skipped: ${CHROMIUM} not found`);
const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';

interface Instance {
  env: TestEnv;
  board: Board;
  app: FastifyInstance;
  base: string;
  close(): Promise<void>;
}

async function start(env: Record<string, string> = {}): Promise<Instance> {
  const testEnv = await createTestEnv({
    wire: false,
    executor: async () => ({ status: 'done' }),
    env,
    overrides: { message_board: { telegram_forward: false } },
  });
  const board = createBoard(testEnv.services, { sse: { heartbeatMs: 1000 } });
  const app = await buildApp(testEnv.services, { plugins: [messageRoutes(board)] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    env: testEnv,
    board,
    app,
    base,
    async close() {
      const closing = app.close();
      app.server.closeAllConnections(); // the browser's idle keep-alive sockets
      await closing;
      await testEnv.close();
    },
  };
}

describe('messages page in headless Chromium', () => {
  let browser: Browser;

  beforeAll(async () => {
    if (!hasChromium) return;
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it.skipIf(!hasChromium)(`shows posted messages live, as text, with threads, filters and reconnects${SKIP}`, async () => {
    const inst = await start();
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const errors = watchErrors(page);
    const post = async (body: Record<string, unknown>) => {
      const res = await fetch(`${inst.base}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(201);
      return res.json() as Promise<{ id: number }>;
    };
    try {
      const old = await post({ sender: 'orchestrator', message: 'history before the page opened', message_type: 'status' });
      await page.goto(`${inst.base}/messages`);
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
      await page.waitForSelector(`#messages [data-id="${old.id}"]`, { timeout: 10_000 });

      // Live, without reload.
      const live = await post({ sender: 'task-1:coder', recipient: 'reviewer', message: 'hello from the API', message_type: 'question' });
      await page.waitForSelector(`#messages [data-id="${live.id}"]`, { timeout: 10_000 });
      expect(await page.textContent(`#messages [data-id="${live.id}"] .body`)).toBe('hello from the API');
      expect(await page.getAttribute(`#messages [data-id="${live.id}"]`, 'class')).toContain('type-question');

      // Hostile content renders as text and runs nothing.
      const evil = await post({ sender: '<b>mallory</b>', recipient: '<i>x</i>', message: XSS, message_type: 'error' });
      await page.waitForSelector(`#messages [data-id="${evil.id}"]`, { timeout: 10_000 });
      expect(await page.textContent(`#messages [data-id="${evil.id}"] .body`)).toBe(XSS);
      expect(await page.textContent(`#messages [data-id="${evil.id}"] .who`)).toBe('<b>mallory</b>');
      expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
      expect(await page.locator('#messages img, #messages script, #messages b, #messages i').count()).toBe(0);

      // Thread view: a reply shows under its question.
      const reply = await post({ sender: 'reviewer', message: 'use Redis', reply_to: live.id });
      await page.waitForSelector(`#messages [data-id="${reply.id}"]`, { timeout: 10_000 });
      await page.click(`#messages [data-id="${live.id}"]`);
      await page.waitForSelector(`#thread-list [data-id="${reply.id}"].depth-1`, { timeout: 10_000 });
      expect(await page.isVisible('#thread')).toBe(true);
      await page.screenshot({ path: path.join(ARTIFACTS, 'messages-page.png'), fullPage: true });
      await page.click('#thread-close');

      // Reconnect: the server drops every stream; a message posted meanwhile still arrives, via Last-Event-ID.
      const lastEventIds: string[] = [];
      page.on('request', (r) => {
        const h = r.headers()['last-event-id'];
        if (h) lastEventIds.push(h);
      });
      inst.board.sse.closeAll();
      const missed = await post({ sender: 'coder', message: 'posted while disconnected', message_type: 'info' });
      await page.waitForSelector(`#messages [data-id="${missed.id}"]`, { timeout: 15_000 });
      expect(lastEventIds.length).toBeGreaterThan(0);
      expect(await page.locator(`#messages [data-id="${missed.id}"]`).count()).toBe(1);

      // Filters go to the API: only errors are left, and a live info message is not shown.
      await page.selectOption('#f-type', 'error');
      await page.waitForFunction(
        () =>
          Array.from(document.querySelectorAll('#messages .msg')).every((n) => n.classList.contains('type-error')) &&
          document.querySelectorAll('#messages .msg').length > 0,
        undefined,
        { timeout: 10_000 },
      );
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
      await post({ sender: 'x', message: 'info after filtering', message_type: 'info' });
      const err2 = await post({ sender: 'x', message: 'error after filtering', message_type: 'error' });
      await page.waitForSelector(`#messages [data-id="${err2.id}"]`, { timeout: 10_000 });
      expect(await page.locator('#messages .type-info').count()).toBe(0);
      // Search (FTS on the server) with characters that are FTS syntax.
      await page.fill('#f-search', 'after "filtering" (');
      await page.click('#filters button[type="submit"]');
      await page.waitForFunction(
        (id) => document.querySelectorAll('#messages .msg').length === 1 && document.querySelector(`#messages [data-id="${id}"]`) !== null,
        err2.id,
        { timeout: 10_000 },
      );

      // Phone width: nothing overflows sideways.
      await page.setViewportSize({ width: 375, height: 740 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      await page.screenshot({ path: path.join(ARTIFACTS, 'messages-page-phone.png') });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await inst.close();
    }
  });

  it.skipIf(!hasChromium)(`asks for the token once on 401 and sends it as a header, never in a URL${SKIP}`, async () => {
    const token = 'page-test-token-0123456789';
    const inst = await start({ FACTORY_AUTH_TOKEN: token });
    const page = await browser.newPage();
    // The browser itself logs the first (expected) 401 response.
    const errors = watchErrors(page, [/status of 401/]);
    const urls: string[] = [];
    const authHeaders: string[] = [];
    page.on('request', (r) => {
      urls.push(r.url());
      if (r.url().includes('/api/')) authHeaders.push(r.headers().authorization ?? '');
    });
    try {
      await page.goto(`${inst.base}/messages`);
      await page.waitForSelector('#auth:not([hidden])', { timeout: 10_000 });
      await page.fill('#auth-token', token);
      await page.click('#auth-form button[type="submit"]');
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
      const res = await fetch(`${inst.base}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ sender: 'human', message: 'authorised hello' }),
      });
      const m = (await res.json()) as { id: number };
      await page.waitForSelector(`#messages [data-id="${m.id}"]`, { timeout: 10_000 });
      expect(await page.isHidden('#auth')).toBe(true);
      expect(urls.some((u) => u.includes(token))).toBe(false);
      expect(authHeaders.filter((h) => h === `Bearer ${token}`).length).toBeGreaterThan(0);
      expect(await page.evaluate(() => sessionStorage.getItem('factory_token'))).toBe(token);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
      await inst.close();
    }
  });
});
