// Keeps the documentation from drifting: every config key of the zod schema and every environment
// variable src/config.ts reads must be documented (and secrets listed in .env.example).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema } from '../src/config.js';
import { ROOT } from './helpers.js';

const PLACEHOLDER = '<name>';

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  valueType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
}
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/**
 * Dotted key paths of a schema. Wrappers (optional, default, prefault, nullable, pipe) are looked
 * through; a record is one entry whose values' keys continue under `<name>`; arrays of objects under `[]`.
 */
export function keyPaths(schema: z.ZodType, prefix = '', out: string[] = []): string[] {
  const def = defOf(schema);
  switch (def.type) {
    case 'object':
      for (const [k, v] of Object.entries(def.shape ?? {})) {
        const p = prefix ? `${prefix}.${k}` : k;
        out.push(p);
        keyPaths(v, p, out);
      }
      break;
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'nonoptional':
    case 'readonly':
    case 'catch':
      keyPaths(def.innerType!, prefix, out);
      break;
    case 'pipe':
      keyPaths(def.in!, prefix, out);
      break;
    case 'record':
      keyPaths(def.valueType!, `${prefix}.${PLACEHOLDER}`, out);
      break;
    case 'array':
      keyPaths(def.element!, `${prefix}[]`, out);
      break;
    case 'union':
      for (const o of def.options ?? []) keyPaths(o, prefix, out);
      break;
    default:
      break;
  }
  return [...new Set(out)];
}

/** Environment variables named in src/config.ts, split into what must be in .env.example and what is only inherited. */
export function envVarsOfConfig(source: string): { own: string[]; inherited: string[] } {
  const names = new Set<string>();
  for (const m of source.matchAll(/\b(?:env|baseEnv|process\.env)\.([A-Z][A-Z0-9_]*)\b/g)) names.add(m[1]!);
  for (const m of source.matchAll(/\b(?:env|baseEnv)\[\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*\]/g)) names.add(m[1]!);
  const block = /INHERITED_ENV\s*=\s*\[([\s\S]*?)\]/.exec(source)?.[1] ?? '';
  const inherited = [...block.matchAll(/['"]([A-Za-z_][A-Za-z0-9_]*)['"]/g)].map((m) => m[1]!);
  return { own: [...names].filter((n) => !inherited.includes(n)).sort(), inherited };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A key documented in backticks; any `<placeholder>` spelling is accepted for record keys. */
const documented = (doc: string, key: string) => new RegExp('`' + escape(key).split(escape(PLACEHOLDER)).join('<[a-z_]+>') + '`').test(doc);

const configDoc = path.join(ROOT, 'docs', 'configuration.md');
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');

describe('docs/configuration.md', () => {
  const doc = read(configDoc);
  const keys = keyPaths(configSchema as unknown as z.ZodType);

  it('the schema walk finds the keys (sanity check of the test itself)', () => {
    expect(keys.length).toBeGreaterThan(60);
    for (const k of [
      'server.port',
      'agent.command',
      'repos',
      'repos.<name>.url',
      'agent_templates',
      'workflows',
      'workflows.<name>.steps[].loop_to',
      'plane.states',
      'docker.network',
    ]) {
      expect(keys).toContain(k);
    }
    expect(documented('see `repos.<repo>.url`', 'repos.<name>.url')).toBe(true);
    expect(documented('see `repos.url`', 'repos.<name>.url')).toBe(false);
  });

  it('documents every config key of the zod schema', () => {
    expect(doc.length).toBeGreaterThan(0);
    const missing = keys.filter((k) => !documented(doc, k));
    expect(missing, `undocumented config keys: ${missing.join(', ')}`).toEqual([]);
  });

  it('documents every environment variable, and .env.example lists every non-inherited one', () => {
    const { own, inherited } = envVarsOfConfig(readFileSync(path.join(ROOT, 'src', 'config.ts'), 'utf8'));
    expect(own).toEqual(expect.arrayContaining(['GITHUB_TOKEN', 'FACTORY_AUTH_TOKEN', 'FACTORY_CONFIG', 'ANTHROPIC_API_KEY']));
    expect(inherited).toEqual(expect.arrayContaining(['PATH', 'HOME']));
    const example = readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    const notInExample = own.filter((v) => !new RegExp(`^#?\\s*${v}=`, 'm').test(example));
    expect(notInExample, `missing from .env.example: ${notInExample.join(', ')}`).toEqual([]);
    const notInDoc = [...own, ...inherited].filter((v) => !doc.includes(`\`${v}\``));
    expect(notInDoc, `missing from docs/configuration.md: ${notInDoc.join(', ')}`).toEqual([]);
  });
});

describe('docs/', () => {
  it('has the six documents (architecture, configuration, operations, api, troubleshooting, differences)', () => {
    for (const f of [
      'architecture.md',
      'configuration.md',
      'operations.md',
      'api.md',
      'troubleshooting.md',
      'differences-from-upstream.md',
    ]) {
      expect(existsSync(path.join(ROOT, 'docs', f)), f).toBe(true);
    }
  });

  it('relative links between docs and into the repository resolve', () => {
    const broken: string[] = [];
    for (const f of [
      'architecture.md',
      'configuration.md',
      'operations.md',
      'api.md',
      'troubleshooting.md',
      'differences-from-upstream.md',
    ]) {
      const file = path.join(ROOT, 'docs', f);
      for (const m of read(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        if (!existsSync(path.resolve(path.dirname(file), target))) broken.push(`${f} -> ${target}`);
      }
    }
    expect(broken).toEqual([]);
  });
});
