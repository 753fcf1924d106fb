// The web dashboard at `/`, driven in headless Chromium against a real Factory with the fake claude.
import { mkdirSync, readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server/app.js';
import { STATIC_DIR } from '../src/paths.js';
import { dashboardRoutes } from '../src/server/routes/dashboard.js';
import { createAgentEnv, type AgentEnv } from './agent-harness.js';
import { ARTIFACTS, CHROMIUM, hasChromium, launchBrowser, SKIP, watchErrors } from './browser.js';

// Callbacks passed to page.waitForFunction run in the browser; the project compiles without the DOM lib.
declare const document: {
  querySelector(s: string): { textContent: string | null } | null;
  querySelectorAll(s: string): ArrayLike<unknown>;
};

if (!hasChromium) console.warn(`dashboard browser tests skipped: ${CHROMIUM} not found`);
const XSS = '<img src=x onerror="window.__pwned=1">';
/** A text argument for the fake claude: `_` means space there, so encode it too. */
const fakeText = (s: string) => encodeURIComponent(s).replace(/_/g, '%5F');
const shot = (name: string) => path.join(ARTIFACTS, `dashboard-${name}.png`);

interface Instance {
  env: AgentEnv;
  app: FastifyInstance;
  base: string;
  close(): Promise<void>;
}

async function start(env?: Record<string, string>): Promise<Instance> {
  const agentEnv = await createAgentEnv(env ? { env } : {});
  // Once src/wire.ts lists the dashboard itself, the env's routes already hold it.
  const routes = agentEnv.wired!.routes;
  const app = await buildApp(agentEnv.services, { plugins: routes.includes(dashboardRoutes) ? routes : [...routes, dashboardRoutes] });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    env: agentEnv,
    app,
    base,
    async close() {
      const closing = app.close();
      app.server.closeAllConnections(); // the browser's idle keep-alive sockets and event streams
      await closing;
      await agentEnv.stopAll();
    },
  };
}

const waitTaskPageStatus = (page: Page, status: string, timeout = 30_000) =>
  page.waitForFunction((s) => document.querySelector('#t-status')?.textContent === s, status, { timeout });
const noSideways = (page: Page) => page.evaluate('document.documentElement.scrollWidth <= window.innerWidth');

// Records every text the status pills of the task list show, from DOM mutations (no polling).
const RECORD_STATUSES = `(() => {
  window.__seen = {};
  window.__noReload = 1;
  const rec = (id, s) => { const a = (window.__seen[id] ||= []); if (a[a.length - 1] !== s) a.push(s); };
  new MutationObserver((muts) => {
    for (const m of muts) {
      const pill = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if (!pill || !pill.matches('.c-status .pill')) continue;
      const tr = pill.closest('tr[data-id]');
      for (const n of m.addedNodes) if (n.nodeType === 3 && n.data) rec(tr.dataset.id, n.data);
      if (m.type === 'characterData') rec(tr.dataset.id, m.target.data);
    }
  }).observe(document.getElementById('task-rows'), { childList: true, subtree: true, characterData: true });
})()`;

describe('dashboard HTTP routes', () => {
  let inst: Instance;
  beforeAll(async () => {
    inst = await start();
  });
  afterAll(async () => {
    await inst?.close();
  });

  it('serves the page for / and its deep links with a strict CSP, and 404 for bad ids', async () => {
    for (const p of ['/', '/tasks/12', '/workflows/3', '/workflows', '/new']) {
      const res = await fetch(`${inst.base}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await res.text()).toContain('<script type="module" src="/static/dashboard/main.js"></script>');
    }
    expect((await fetch(`${inst.base}/tasks/abc`)).status).toBe(404);
    for (const asset of ['dashboard.css', 'app.css', 'messages.js', 'auth.js', 'sse.js']) {
      expect((await fetch(`${inst.base}/static/${asset}`)).status, asset).toBe(200);
    }
    // The dashboard's modules: each one is served as JavaScript (browsers refuse modules otherwise).
    const modules = readdirSync(path.join(STATIC_DIR, 'dashboard')).filter((f) => f.endsWith('.js'));
    expect(modules).toContain('main.js');
    for (const file of modules) {
      const res = await fetch(`${inst.base}/static/dashboard/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get('content-type'), file).toMatch(/^(application|text)\/javascript/);
    }
  });
});

describe('dashboard in headless Chromium', () => {
  let browser: Browser;
  let inst: Instance;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    if (!hasChromium) return;
    mkdirSync(ARTIFACTS, { recursive: true });
    inst = await start();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await inst?.close();
  });

  async function open(url: string, viewport = { width: 1280, height: 900 }) {
    const page = await browser.newPage({ viewport });
    const errors = watchErrors(page);
    await page.goto(`${inst.base}${url}`);
    await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
    return { page, errors };
  }

  it.skipIf(!hasChromium)(`creates a task through the form and shows queued → in_progress → in_review live${SKIP}`, async () => {
    const { page, errors } = await open('/');
    try {
      await page.evaluate(RECORD_STATUSES);
      await page.click('#v-tasks .new-open');
      await page.fill('#n-repo', 'acme/web');
      await page.fill('#n-title', 'Slow task from the form');
      await page.fill('#n-description', 'Work slowly [fake:slow ms=150 lines=20]');
      await page.selectOption('#n-agent', 'coder');
      await page.click('#n-submit');
      const created = await page.waitForSelector('#notice a', { timeout: 10_000 });
      const id = Number((await created.textContent())!.replace('#', ''));
      expect(id).toBeGreaterThan(0);
      ids.slow = id;
      await page.waitForFunction(
        (i) => document.querySelector(`#task-rows tr[data-id="${i}"] .c-status .pill`)?.textContent === 'in_progress',
        id,
        { timeout: 20_000 },
      );
      await page.screenshot({ path: shot('list-running'), fullPage: true });
      await page.waitForFunction(
        (i) => document.querySelector(`#task-rows tr[data-id="${i}"] .c-status .pill`)?.textContent === 'in_review',
        id,
        { timeout: 30_000 },
      );
      const seen = (await page.evaluate(`window.__seen[${id}]`)) as string[];
      expect(seen).toEqual(['queued', 'in_progress', 'in_review']);
      expect(await page.evaluate('window.__noReload')).toBe(1);
      // The row shows the rest of the task: repo, agent, cost, a duration and the PR link.
      const row = `#task-rows tr[data-id="${id}"]`;
      expect(await page.textContent(`${row} .c-repo`)).toBe('acme/web');
      expect(await page.textContent(`${row} .c-agent`)).toBe('coder');
      await page.waitForFunction(
        (r) => (document.querySelector(`${r} .c-cost`)?.textContent ?? '—') !== '—' && document.querySelector(`${r} .pr-link`) !== null,
        row,
        { timeout: 10_000 },
      );
      expect(await page.textContent(`${row} .c-duration`)).toMatch(/^\d+s$|^\d+m/);
      expect(await page.getAttribute(`${row} .pr-link`, 'href')).toMatch(/^https?:\/\//);
      // Filters: by status (server side) and by repository.
      await page.selectOption('#f-status', 'failed');
      await page.waitForFunction(() => document.querySelectorAll('#task-rows tr').length === 0, undefined, { timeout: 10_000 });
      expect(new URL(page.url()).search).toBe('?status=failed');
      await page.selectOption('#f-status', 'in_review');
      await page.waitForSelector(row, { timeout: 10_000 });
      await page.fill('#f-repo', 'acme/other');
      await page.click('#task-filters button[type="submit"]');
      await page.waitForFunction(() => document.querySelectorAll('#task-rows tr').length === 0, undefined, { timeout: 10_000 });
      await page.click('#f-clear');
      await page.waitForSelector(row, { timeout: 10_000 });
      await page.screenshot({ path: shot('list'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`opens a running task from the list and tails its log live${SKIP}`, async () => {
    const t = await inst.env.createTask({ title: 'Tail my log', description: '[fake:slow ms=150 lines=30]' });
    ids.tail = t.id;
    const { page, errors } = await open('/');
    try {
      const linkSel = `#task-rows tr[data-id="${t.id}"] a.task-link`;
      await page.waitForSelector(linkSel, { timeout: 10_000 });
      await page.evaluate('window.__noReload = 1');
      await page.click(linkSel);
      await page.waitForSelector('#v-task:not([hidden])', { timeout: 10_000 });
      expect(new URL(page.url()).pathname).toBe(`/tasks/${t.id}`);
      await waitTaskPageStatus(page, 'in_progress', 20_000);
      // Lines arrive while the agent works.
      await page.waitForFunction(() => document.querySelectorAll('#t-logs li.k-text').length >= 2, undefined, { timeout: 20_000 });
      const first = await page.locator('#t-logs li').count();
      await page.waitForFunction((n) => document.querySelectorAll('#t-logs li').length >= n + 5, first, { timeout: 20_000 });
      expect(await page.textContent('#t-status')).toBe('in_progress');
      await page.screenshot({ path: shot('task-running'), fullPage: true });
      await waitTaskPageStatus(page, 'in_review', 30_000);
      await page.waitForSelector('#t-logs li.k-final', { timeout: 10_000 });
      // Stream-json is rendered readably, not as raw JSON.
      const logText = (await page.textContent('#t-logs')) ?? '';
      expect(logText).not.toContain('"type":"assistant"');
      expect(await page.locator('#t-logs li.k-tool .tag', { hasText: 'Edit' }).count()).toBeGreaterThan(0);
      expect(await page.textContent('#t-logs li.k-tool .txt')).toBe('FAKE_CHANGE.md');
      expect(await page.locator('#t-logs li.k-init').count()).toBeGreaterThan(0);
      expect(await page.locator('#t-logs li.k-factory').count()).toBeGreaterThan(0);
      expect(await page.textContent('#t-logs li.k-final')).toContain('$');
      expect(await page.locator('#t-logs li.k-text').count()).toBeGreaterThanOrEqual(30);
      // Header, details and the PR link.
      expect(await page.textContent('#t-title')).toBe('Tail my log');
      await page.waitForSelector('#t-pr:not([hidden])', { timeout: 10_000 });
      expect(await page.getAttribute('#t-pr', 'href')).toMatch(/^https?:\/\//);
      expect(await page.textContent('#t-details [data-key="repo"]')).toBe('acme/web');
      // The agent runs with their outcome and cost.
      // The status pill follows the stream at once; the runs come with the task's re-read right after.
      await page.waitForSelector('#t-runs-box:not([hidden])', { timeout: 10_000 });
      await page.waitForFunction(() => !/running/.test(document.querySelector('#t-runs li')?.textContent ?? 'running'), undefined, {
        timeout: 10_000,
      });
      expect(await page.textContent('#t-runs li')).toMatch(/^#1 run · success · \d+s · \$0\.0123$/);
      expect(await page.isHidden('#t-cancel')).toBe(true);
      expect(await page.evaluate('window.__noReload')).toBe(1);
      await page.screenshot({ path: shot('task'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`answers a clarification from the task page and the agent resumes${SKIP}`, async () => {
    const t = await inst.env.createTask({
      title: 'Pick a database',
      description: 'Store users [fake:clarify question=Which_db? options=sqlite,postgres]',
    });
    ids.clarify = t.id;
    const { page, errors } = await open(`/tasks/${t.id}`);
    try {
      await waitTaskPageStatus(page, 'waiting_for_input', 30_000);
      await page.waitForSelector('#t-clarify:not([hidden])', { timeout: 10_000 });
      expect(await page.textContent('#t-question')).toBe('Which db?');
      expect(await page.locator('#t-options button').allTextContents()).toEqual(['sqlite', 'postgres']);
      await page.screenshot({ path: shot('clarify'), fullPage: true });
      await page.click('#t-options button:has-text("postgres")');
      expect(await page.inputValue('#t-answer')).toBe('postgres');
      await page.click('#t-answer-send');
      await page.waitForSelector('#t-clarify', { state: 'hidden', timeout: 10_000 });
      await waitTaskPageStatus(page, 'in_review', 30_000);
      await page.waitForSelector('#t-history-box:not([hidden])', { timeout: 10_000 });
      expect(await page.textContent('#t-history')).toContain('A: postgres');
      const task = await inst.env.getTask(t.id);
      expect(JSON.parse(task.clarification_context).history[0].response).toBe('postgres');
      expect(inst.env.fakeLog().some((r) => JSON.stringify(r).includes('postgres'))).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`cancels a running task from the task page${SKIP}`, async () => {
    const t = await inst.env.createTask({ title: 'Hangs forever', description: '[fake:hang]' });
    ids.hang = t.id;
    const { page, errors } = await open(`/tasks/${t.id}`);
    try {
      await waitTaskPageStatus(page, 'in_progress', 20_000);
      await page.waitForSelector('#t-logs li.k-text', { timeout: 20_000 });
      await page.click('#t-cancel');
      expect(await page.textContent('#t-cancel')).toBe('Confirm cancel');
      await page.click('#t-cancel');
      await waitTaskPageStatus(page, 'cancelled', 20_000);
      expect(await page.isHidden('#t-cancel')).toBe(true);
      expect((await inst.env.getTask(t.id)).status).toBe('cancelled');
      await page.screenshot({ path: shot('cancelled'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`shows a workflow's steps, iterations and review counts${SKIP}`, async () => {
    const res = await inst.env.app.inject({
      method: 'POST',
      url: '/api/workflows/code_review',
      payload: { title: 'Reviewed change', description: 'Cache it [fake:reviewer=review verdicts=reject,approve]', repo: 'acme/web' },
    });
    expect(res.statusCode).toBe(201);
    const wf = res.json() as { id: number };
    ids.workflow = wf.id;
    const { page, errors } = await open('/workflows');
    try {
      const linkSel = `#workflow-rows tr[data-id="${wf.id}"] a.task-link`;
      await page.waitForSelector(linkSel, { timeout: 10_000 });
      await page.click(linkSel);
      await page.waitForSelector('#v-workflow:not([hidden])', { timeout: 10_000 });
      await page.waitForFunction(() => document.querySelector('#w-status')?.textContent === 'completed', undefined, { timeout: 60_000 });
      // The page follows the workflow live; wait for the final render of the timeline.
      await page.waitForFunction(
        () => document.querySelectorAll('#w-timeline .iter').length === 2 && document.querySelectorAll('#w-timeline .review').length === 2,
        undefined,
        { timeout: 15_000 },
      );
      expect(await page.locator('#w-steps li.step').count()).toBe(3);
      expect(await page.locator('#w-steps li.step .agent').allTextContents()).toEqual(['coder', 'reviewer', 'coder_revision']);
      expect(await page.textContent('#w-steps li.step[data-index="2"] .pill')).toBe('skipped');
      expect(await page.textContent('#w-details [data-key="iteration"]')).toBe('2 / 3');
      // Iteration 1: coder, rejecting review (one major), revision. Iteration 2: approving review (one nit).
      const iter1 = '#w-timeline .iter[data-iteration="1"]';
      const iter2 = '#w-timeline .iter[data-iteration="2"]';
      expect(await page.locator(`${iter1} .tl-item .agent`).allTextContents()).toEqual(['coder', 'reviewer', 'coder_revision']);
      expect(await page.locator(`${iter2} .tl-item .agent`).allTextContents()).toEqual(['reviewer']);
      expect(await page.textContent(`${iter1} .review .verdict`)).toBe('changes requested');
      expect(await page.getAttribute(`${iter1} .review .count[data-severity="major"]`, 'data-count')).toBe('1');
      expect(await page.textContent(`${iter1} .review .review-summary`)).toBe('Found problems');
      expect(await page.textContent(`${iter2} .review .verdict`)).toBe('approved');
      expect(await page.getAttribute(`${iter2} .review .count[data-severity="nit"]`, 'data-count')).toBe('1');
      expect(await page.getAttribute(`${iter2} .review .count[data-severity="major"]`, 'data-count')).toBe('0');
      expect(await page.textContent('#w-steps li.step[data-index="1"] .review .verdict')).toBe('approved');
      await page.screenshot({ path: shot('workflow'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`renders agent text as text, never as markup${SKIP}`, async () => {
    const t = await inst.env.createTask({
      title: XSS,
      description: `[fake:message to=human type=error content=${fakeText(`agent says ${XSS}`)}]`,
    });
    ids.xss = t.id;
    const { page, errors } = await open('/');
    try {
      await page.waitForFunction(
        (i) => document.querySelector(`#task-rows tr[data-id="${i}"] .c-task .title`)?.textContent !== undefined,
        t.id,
        { timeout: 10_000 },
      );
      expect(await page.textContent(`#task-rows tr[data-id="${t.id}"] .c-task .title`)).toBe(XSS);
      await page.click(`#task-rows tr[data-id="${t.id}"] a.task-link`);
      await waitTaskPageStatus(page, 'in_review', 30_000);
      const msg = page.locator('#t-messages li .body', { hasText: 'agent says' });
      await msg.waitFor({ timeout: 10_000 });
      expect(await msg.textContent()).toBe(`agent says ${XSS}`);
      expect(await page.textContent('#t-title')).toBe(XSS);
      await page.waitForFunction(() => (document.querySelector('#t-logs')?.textContent ?? '').includes('agent says <img'), undefined, {
        timeout: 10_000,
      });
      await page.waitForFunction(() => document.querySelector('#t-details [data-key="completed"]')?.textContent !== '—', undefined, {
        timeout: 10_000,
      });
      expect(await page.evaluate('window.__pwned')).toBeUndefined();
      expect(await page.locator('main img, main script').count()).toBe(0);
      await page.screenshot({ path: shot('escaping'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it.skipIf(!hasChromium)(`fits a phone screen${SKIP}`, async () => {
    const phone = { width: 390, height: 844 };
    const { page, errors } = await open('/', phone);
    try {
      await page.waitForSelector('#task-rows tr', { timeout: 10_000 });
      expect(await noSideways(page)).toBe(true);
      await page.screenshot({ path: shot('phone-list'), fullPage: true });
      await page.click('#v-tasks .new-open');
      expect(await noSideways(page)).toBe(true);
      await page.screenshot({ path: shot('phone-new') });
      for (const [name, url, ready] of [
        ['phone-task', `/tasks/${ids.tail}`, '#t-logs li.k-final'],
        ['phone-workflow', `/workflows/${ids.workflow}`, '#w-timeline .iter'],
      ] as const) {
        if (!url.match(/\d+$/)) continue; // an earlier test did not get that far
        await page.goto(`${inst.base}${url}`);
        await page.waitForSelector(ready, { timeout: 10_000 });
        expect(await noSideways(page), name).toBe(true);
        await page.screenshot({ path: shot(name), fullPage: true });
      }
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});

describe('dashboard with FACTORY_AUTH_TOKEN', () => {
  let browser: Browser;
  let inst: Instance;
  const token = 'tok-1234567890';

  beforeAll(async () => {
    if (!hasChromium) return;
    mkdirSync(ARTIFACTS, { recursive: true });
    inst = await start({ FACTORY_AUTH_TOKEN: token });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await inst?.close();
  });

  it.skipIf(!hasChromium)(`asks once for the token, keeps it in the tab and sends it as a header${SKIP}`, async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    // The browser itself logs the first (expected) 401 responses.
    const errors = watchErrors(page, [/status of 401/]);
    const urls: string[] = [];
    const unauthorised: string[] = [];
    let tokenGiven = false;
    page.on('request', (r) => urls.push(r.url()));
    page.on('response', (r) => {
      if (r.status() === 401 && tokenGiven) unauthorised.push(r.url());
    });
    try {
      await page.goto(`${inst.base}/`);
      await page.waitForSelector('#auth:not([hidden])', { timeout: 10_000 });
      await page.screenshot({ path: shot('auth') });
      await page.fill('#auth-token', token);
      tokenGiven = true;
      await page.click('#auth-form button[type="submit"]');
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
      expect(await page.isHidden('#auth')).toBe(true);

      // It works: create a task through the form and see it finish live.
      await page.click('#v-tasks .new-open');
      await page.fill('#n-repo', 'acme/web');
      await page.fill('#n-title', 'Authorised task');
      await page.fill('#n-description', '[fake:success]');
      await page.click('#n-submit');
      const id = Number(((await (await page.waitForSelector('#notice a', { timeout: 10_000 })).textContent()) ?? '').replace('#', ''));
      await page.waitForFunction(
        (i) => document.querySelector(`#task-rows tr[data-id="${i}"] .c-status .pill`)?.textContent === 'in_review',
        id,
        { timeout: 30_000 },
      );
      await page.click(`#task-rows tr[data-id="${id}"] a.task-link`);
      await waitTaskPageStatus(page, 'in_review', 10_000);
      await page.waitForSelector('#t-logs li.k-final', { timeout: 10_000 });

      // A reload keeps the token (session storage): no second prompt.
      await page.reload();
      await page.waitForSelector('#status[data-state="live"]', { timeout: 10_000 });
      await waitTaskPageStatus(page, 'in_review', 10_000);
      expect(await page.isHidden('#auth')).toBe(true);
      expect(await page.evaluate('sessionStorage.getItem("factory_token")')).toBe(token);
      expect(unauthorised).toEqual([]);
      expect(urls.some((u) => u.includes(token))).toBe(false);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
