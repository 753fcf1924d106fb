// The CLI's option parsing: strict, so a typo never runs a command with defaults instead.
import { describe, expect, it } from 'vitest';
import { parseOptions } from '../src/cli/args.js';
import { parseMigrateDbArgs } from '../src/cli/migrate-db.js';

const spec = { from: { type: 'string' }, json: { type: 'boolean' } } as const;

describe('parseOptions', () => {
  it('reads --name value, --name=value and flags', () => {
    expect(parseOptions(['--from', 'a', '--json'], spec)).toEqual({ from: 'a', json: true });
    expect(parseOptions(['--from=b'], spec)).toEqual({ from: 'b' });
    expect(parseOptions([], spec)).toEqual({});
  });

  it('refuses unknown options, stray arguments, missing or empty values and repeats', () => {
    expect(parseOptions(['--form', 'a'], spec)).toMatch(/Unknown option '--form'/);
    expect(parseOptions(['extra'], spec)).toMatch(/Unexpected argument 'extra'/);
    expect(parseOptions(['--from'], spec)).toMatch(/'--from <value>' argument missing/);
    expect(parseOptions(['--from='], spec)).toBe('--from needs a value');
    expect(parseOptions(['--from', 'a', '--from', 'b'], spec)).toBe('--from given twice');
  });

  it('backs migrate-db: required options and the batch range', () => {
    expect(parseMigrateDbArgs(['--from', 'x.db', '--to', 'sqlite:y.db', '--batch=50'])).toEqual({
      from: 'x.db',
      to: 'sqlite:y.db',
      batch: 50,
    });
    expect(parseMigrateDbArgs(['--from', 'x.db'])).toBe('--to is required');
    expect(parseMigrateDbArgs(['--from', 'x.db', '--to', 'y', '--batch', '0'])).toMatch(/--batch must be a whole number/);
    expect(parseMigrateDbArgs(['--from', 'x.db', '--to', 'y', '--to', 'z'])).toBe('--to given twice');
  });
});
