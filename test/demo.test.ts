/** The README's first command: `npm run demo` (the built CLI's `demo`) works on a fresh directory with no settings at all. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { seedPeople, studentNumberFor } from '../src/simulator/index.js';
import { runCli } from './support/cli.js';

const cwd = mkdtempSync(path.join(tmpdir(), 'cc-demo-'));
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

it('runs the embedded demo: simulator into SQLite, a summary, and a second run that does nothing', async () => {
  const result = await runCli(['demo'], {}, { cwd });
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const matchable = seedPeople(40, 1, 9).filter((p) => studentNumberFor(p) !== null).length;
  expect(result.stdout).toMatch(/found\s+40\n/);
  expect(result.stdout).toMatch(new RegExp(`stored\\s+${matchable}\\n`));
  expect(result.stdout).toMatch(new RegExp(`acknowledged\\s+${matchable}\\n`));
  expect(result.stdout).toMatch(new RegExp(`unmatched\\s+${40 - matchable}\\n`));
  expect(result.stdout).toMatch(/Second run: found 0, stored 0/);
  expect(existsSync(path.join(cwd, '.cloudcard-sync', 'demo.sqlite'))).toBe(true);
});
