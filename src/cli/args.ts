// Command-line options for the CLI commands, parsed by node:util parseArgs (strict: an unknown
// option, a stray argument or a missing value is an error, never silently ignored).
import { parseArgs } from 'node:util';

export type OptionSpec = Record<string, { type: 'string' | 'boolean' }>;
export type OptionValues = Record<string, string | boolean | undefined>;

/** The option values, or a one-line usage error. A string option given twice is an error too. */
export function parseOptions(args: string[], options: OptionSpec): OptionValues | string {
  try {
    const { values, tokens } = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
    const seen = new Set<string>();
    for (const t of tokens ?? []) {
      if (t.kind !== 'option') continue;
      if (seen.has(t.name)) return `--${t.name} given twice`;
      seen.add(t.name);
    }
    for (const [name, spec] of Object.entries(options)) {
      if (spec.type === 'string' && values[name] === '') return `--${name} needs a value`;
    }
    return values as OptionValues;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
