// The API checks each JSON answer once, serialized, and walks it with scrubDeep only when the check
// says it might hold a secret. The check must never miss what scrubDeep would change.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mightHoldSecret, registerSecrets, scrubDeep, REDACTED } from '../src/secrets.js';
import { createTestEnv, type TestEnv } from './helpers.js';

// A configured secret with characters JSON escapes (a quote, a backslash, a tab).
const ODD_SECRET = 'pa"ss\\wo\trd-42';
const GH = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
const TG = '7712345678:AAFakeTelegramBotTokenForTests_0123';
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----';

/** Texts holding something to scrub, in the places where JSON escaping changes what surrounds it. */
const DIRTY = [
  `token ${GH} here`,
  `\n${GH}\n`, // \n before the token becomes "\n": a letter, so no word boundary in the JSON text
  `"${GH}"`,
  `\t${TG}`,
  `\u0001${TG}\u0002`,
  `sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789`,
  `xoxb-123456789012-abcdefghijk`,
  `ftk_12_${'a'.repeat(40)}`,
  `github_pat_${'A'.repeat(40)}`,
  PEM,
  'clone https://user:p"a\\ss@github.com/acme/web.git',
  `https://x:${'\u0001'.repeat(300)}@host`,
  `the password is ${ODD_SECRET}.`,
  Buffer.from(ODD_SECRET).toString('base64'),
];
const CLEAN = ['https://github.com/acme/web/pull/7', 'user@example.com wrote: ok', 'ghp_short', '12345:abc', '{"a":"b"}', ''];

describe('mightHoldSecret', () => {
  beforeAll(() => registerSecrets([ODD_SECRET]));

  it('says yes for every text scrub would change, wherever it sits in the JSON', () => {
    for (const text of DIRTY) {
      const value = { id: 1, nested: [{ text }], title: 'x' };
      expect(scrubDeep(value), text).not.toEqual(value);
      expect(mightHoldSecret(JSON.stringify(value)), text).toBe(true);
    }
  });

  it('says no for an answer with nothing to scrub (so it goes out uncopied)', () => {
    const value = CLEAN.map((text, id) => ({ id, text, pr_url: 'https://github.com/acme/web/pull/1', n: 123456 }));
    expect(scrubDeep(value)).toEqual(value);
    expect(mightHoldSecret(JSON.stringify(value))).toBe(false);
  });
});

describe('JSON answers of the API', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await createTestEnv();
  });
  afterAll(async () => {
    await env.close();
  });

  it('are scrubbed string by string when they hold a secret, and stay valid JSON', async () => {
    const description = `Use ${GH} and ${ODD_SECRET} and https://u:pw@host/x "quoted"`;
    const created = await env.app.inject({
      method: 'POST',
      url: '/api/tasks',
      payload: { title: `Leak ${TG}`, description, repo: 'acme/web' },
    });
    expect(created.statusCode).toBe(201);
    for (const url of [`/api/tasks/${created.json().id}`, '/api/tasks']) {
      const res = await env.app.inject({ url });
      for (const s of [GH, ODD_SECRET, TG, JSON.stringify(ODD_SECRET).slice(1, -1), 'u:pw@']) expect(res.body).not.toContain(s);
      const task = [res.json()].flat()[0];
      expect(task.description).toBe(`Use ${REDACTED} and ${REDACTED} and https://${REDACTED}@host/x "quoted"`);
      expect(task.title).toBe(`Leak ${REDACTED}`);
    }
  });
});
