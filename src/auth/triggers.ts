// Who may start or steer an agent from outside: one gate for Plane members, GitHub logins and
// Telegram users. Each source has an allowlist; an empty one refuses every sender (safer than
// trusting whoever can reach a webhook or a chat). Refusals are logged, counted for /health and
// told once per sender on the message board, so a misconfiguration is visible, never silent.
import type { Logger } from 'pino';

export type TriggerSource = 'plane' | 'github' | 'telegram';

const CONFIG_KEY: Record<TriggerSource, string> = {
  plane: 'plane.allowed_members',
  github: 'pr_loop.allowed_users',
  telegram: 'telegram.allowed_user_ids',
};

export interface TriggerGateDeps {
  logger: Logger;
  /** Allowed sender identities per source (ids, logins or emails; compared case-insensitively). */
  allow: Record<TriggerSource, string[]>;
  /** Sources that are configured at all (no warning for a source nobody uses). */
  enabled: Record<TriggerSource, boolean>;
  /** Tells people about a refusal (the board); called once per source and sender. */
  announce?(text: string): void;
}

export class TriggerGate {
  private readonly refused: Record<TriggerSource, number> = { plane: 0, github: 0, telegram: 0 };
  private readonly told = new Set<string>();
  private readonly allow: Record<TriggerSource, Set<string>>;

  constructor(private readonly d: TriggerGateDeps) {
    const norm = (list: string[]) => new Set(list.map((x) => String(x).trim().toLowerCase()).filter(Boolean));
    this.allow = { plane: norm(d.allow.plane), github: norm(d.allow.github), telegram: norm(d.allow.telegram) };
  }

  /** True when any identity of the sender (id, login, email) is on the source's allowlist. */
  allows(source: TriggerSource, identities: Array<string | number | undefined | null>, what: string): boolean {
    const ids = identities
      .filter((x): x is string | number => x !== undefined && x !== null && String(x) !== '')
      .map((x) => String(x).toLowerCase());
    if (ids.some((id) => this.allow[source].has(id))) return true;
    this.refused[source]++;
    const who = ids[0] ?? 'unknown sender';
    const why = this.allow[source].size === 0 ? `${CONFIG_KEY[source]} is empty` : `not in ${CONFIG_KEY[source]}`;
    this.d.logger.warn({ source, sender: who, what }, `outside trigger refused: ${why}`);
    const key = `${source}:${who}`;
    if (!this.told.has(key)) {
      this.told.add(key);
      this.d.announce?.(`Refused ${what} from ${source} sender ${who}: ${why}. Add the sender to ${CONFIG_KEY[source]} to allow it.`);
    }
    return false;
  }

  /** The /health view: refusal counts, and a warning per used source whose allowlist is empty. */
  health(): { refused: Record<TriggerSource, number>; warnings: string[] } {
    const warnings = (Object.keys(this.allow) as TriggerSource[])
      .filter((src) => this.d.enabled[src] && this.allow[src].size === 0)
      .map((src) => `${CONFIG_KEY[src]} is empty: every ${src} trigger is refused`);
    return { refused: { ...this.refused }, warnings };
  }
}
