// Tokens that let an agent call the few API routes about its own task (factory-env), and nothing else.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KvRepo } from '../db/repositories/kv.js';

export class TaskTokens {
  private readonly secret: Buffer;

  /** `secretHex`: the install's secret (see load). */
  constructor(secretHex: string) {
    this.secret = Buffer.from(secretHex, 'hex');
  }

  /**
   * The secret is stored once per install, so tokens survive restarts but never equal FACTORY_AUTH_TOKEN.
   * Read, then written when missing: two processes starting at once on a new install could each write
   * their own (the last one wins, and the other's tokens would not verify); a single-process start
   * does this once.
   */
  static async load(kv: KvRepo): Promise<TaskTokens> {
    let s = await kv.get<string>('task_token_secret');
    if (!s) {
      s = randomBytes(32).toString('hex');
      await kv.set('task_token_secret', s);
    }
    return new TaskTokens(s);
  }

  private mac(taskId: number): string {
    return createHmac('sha256', this.secret).update(`task:${taskId}`).digest('hex').slice(0, 40);
  }

  issue(taskId: number): string {
    return `ftk_${taskId}_${this.mac(taskId)}`;
  }

  /** The task id a token belongs to, or undefined. */
  verify(token: string): number | undefined {
    const m = /^ftk_(\d{1,15})_([0-9a-f]{40})$/.exec(token);
    if (!m) return undefined;
    const id = Number(m[1]);
    const want = Buffer.from(this.mac(id));
    const got = Buffer.from(m[2]!);
    return got.length === want.length && timingSafeEqual(got, want) ? id : undefined;
  }
}
