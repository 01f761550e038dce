/**
 * `run --dry-run` through the CLI: it lists, downloads and resolves, reports what it would write and
 * acknowledge, and writes and acknowledges nothing: the students table, the ledger and run history stay as
 * they were, and every photo keeps its status (and version) in CloudCard.
 */
import { afterEach, expect, it } from 'vitest';
import { startSimulator } from '../src/simulator/index.js';
import { countRows, sqliteCampus, syncEnv } from './support/cli-e2e.js';
import { runCli } from './support/cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

it('writes nothing, acknowledges nothing, and says what it would do', async () => {
  const db = await sqliteCampus(10);
  cleanups.push(() => db.close());
  const sim = await startSimulator({ photoCount: 10, seed: 1, unmatchedEvery: 9, imageBytes: 3_000 });
  cleanups.push(() => sim.close());
  const env = syncEnv(sim, db);
  // The job tables exist (as after `migrate`), so "no rows" means the dry run wrote none.
  expect((await runCli(['migrate'], env)).code).toBe(0);
  const before = (await db.knex('students').orderBy('STUDENT_ID')) as unknown[];
  const statuses = sim.photos().map((p) => [p.id, p.status, p.version]);

  const res = await runCli(['run', '--dry-run'], env);
  expect(res.code, res.output).toBe(0);
  expect(res.stdout).toMatch(/Dry run [0-9a-f-]{36} \(nothing written, nothing acknowledged\)/);
  expect(res.stdout).toMatch(/would store +9/);
  // What would be written and acknowledged, photo by photo, and what would be held.
  expect(res.stdout).toMatch(/would write \d+ bytes to students for \d{9} and mark DOWNLOADED/);
  expect(res.stdout).toMatch(/dry run: would mark ON_HOLD/);

  expect(await db.knex('students').orderBy('STUDENT_ID')).toEqual(before);
  expect(await countRows(db.knex, 'cloudcard_ledger')).toBe(0);
  expect(await countRows(db.knex, 'cloudcard_runs')).toBe(0);
  expect(await countRows(db.knex, 'cloudcard_photo_events')).toBe(0);
  expect(await countRows(db.knex, 'cloudcard_student_photo')).toBe(0);
  expect(sim.photos().map((p) => [p.id, p.status, p.version])).toEqual(statuses);
  expect(sim.requests().filter((r) => r.method === 'PUT')).toEqual([]);
  // It did download: a dry run checks the bytes too.
  expect(sim.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/storage')).length).toBe(10 - 1);
});
