// Tokens that let an agent call the few API routes about its own task (factory-env), and nothing else.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KvRepo } from '../db/repositories/kv.js';

export class TaskTokens {
  private readonly secret: Buffer;

  /** The secret is stored once per install, so tokens survive restarts but never equal FACTORY_AUTH_TOKEN. */
  constructor(kv: KvRepo) {
    let s = kv.get<string>('task_token_secret');
    if (!s) {
      s = randomBytes(32).toString('hex');
      kv.set('task_token_secret', s);
    }
    this.secret = Buffer.from(s, 'hex');
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
