/**
 * Run history as an operator reads it: two real runs through the CLI (a held photo, a photo whose bytes are
 * missing, one stored but not acknowledged, one replaced by a newer photo of the same student), then
 * `status` and `explain` against the same database, as text and as JSON. SQLite always, PostgreSQL when
 * TEST_PG_URL is set.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusReport } from '../src/commands/status.js';
import { explain, formatExplanation, type Explanation } from '../src/commands/explain.js';
import { startSimulator, type Simulator } from '../src/simulator/index.js';
import { postgresCampus, sqliteCampus, syncEnv, type CampusDb } from './support/cli-e2e.js';
import { runCli } from './support/cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const CAMPUSES: Array<[string, () => Promise<CampusDb | { skip: string }>]> = [
  ['sqlite', () => sqliteCampus(12)],
  ['postgres', () => postgresCampus(12)],
];

describe.each(CAMPUSES)('status and explain (%s)', (_name, campus) => {
  it('tell what happened to each photo', async (ctx) => {
    const db = await campus();
    if ('skip' in db) {
      console.log(db.skip);
      ctx.skip();
      return;
    }
    cleanups.push(() => db.close());
    const sim: Simulator = await startSimulator({ photoCount: 12, seed: 1, unmatchedEvery: 9, imageBytes: 3_000 });
    cleanups.push(() => sim.close());
    const env = syncEnv(sim, db, { CLOUDCARD_SYNC_MAX_RETRIES: '0', CLOUDCARD_SYNC_CONCURRENCY: '2' });
    const [first, second, third] = sim.photos();
    if (!first || !second || !third) throw new Error('simulator has too few photos');
    // Photo 2's bytes are gone from storage; photo 3 cannot be marked DOWNLOADED (CloudCard keeps failing).
    sim.faults.add({ kind: 'status404', match: { method: 'GET', photoId: second.id }, times: Infinity });
    sim.faults.add({ kind: 'status500', match: { method: 'PUT', photoId: third.id }, times: Infinity });

    const run1 = await runCli(['run'], env);
    expect(run1.code, run1.output).toBe(1);
    const held = sim.photos().filter((p) => p.status === 'ON_HOLD');
    expect(held.length).toBeGreaterThan(0);

    // A newer photo of the first photo's student arrives; run 2 stores it in place of the first.
    const newer = sim.addPhoto({ person: first.person });
    sim.faults.clear();
    sim.faults.add({ kind: 'status404', match: { method: 'GET', photoId: second.id }, times: Infinity });
    sim.faults.add({ kind: 'status500', match: { method: 'PUT', photoId: third.id }, times: Infinity });
    const run2 = await runCli(['run'], env);
    expect(run2.code, run2.output).toBe(1);

    // status: the runs, newest first, and what is pending.
    const statusJson = await runCli(['status', '--json'], env);
    expect(statusJson.code, statusJson.output).toBe(0);
    const report = JSON.parse(statusJson.stdout) as StatusReport;
    expect(report.runs).toHaveLength(2);
    expect(report.runs.map((r) => r.trigger)).toEqual(['manual', 'manual']);
    expect(report.runs[1]?.counts.found).toBe(12);
    expect(report.runs[0]?.counts.stored).toBe(1);
    expect(report.runs.every((r) => r.status === 'partial' && (r.durationMs ?? -1) >= 0)).toBe(true);
    expect(report.unacknowledged.map((u) => u.photoId)).toEqual([third.id]);
    const attention = new Map(report.needsAttention.map((p) => [p.photoId, p]));
    expect(attention.get(second.id)?.event).toBe('left');
    expect(attention.get(second.id)?.reason).toMatch(/404/);
    for (const h of held) {
      expect(attention.get(h.id)?.event).toBe('held');
      expect(attention.get(h.id)?.reason).toMatch(/Card office: check the student ID/);
    }
    // The stored, acknowledged photos are not listed as pending.
    expect(attention.has(first.id)).toBe(false);

    const statusText = await runCli(['status', '--runs', '1'], env);
    expect(statusText.code).toBe(0);
    expect(statusText.stdout).toMatch(/Last 1 run /);
    expect(statusText.stdout).toMatch(new RegExp(`photo ${third.id} v\\d+ +student \\d+ +stored`));
    expect(statusText.stdout).toMatch(new RegExp(`photo ${second.id} v\\d+ +left`));

    // explain <photo id>: the first photo was stored and acknowledged, then replaced by the newer one.
    const firstJson = JSON.parse((await runCli(['explain', String(first.id), '--json'], env)).stdout) as Explanation;
    const story = firstJson.photos.find((p) => p.photoId === first.id);
    expect(story?.ledger[0]?.acknowledgedAt).not.toBeNull();
    expect(story?.supersededBy).toBe(newer.id);
    expect(story?.events.map((e) => e.event)).toEqual(['stored+acknowledged']);
    expect(story?.verdict).toMatch(/was stored for student \d+ .* acknowledged in CloudCard at .* newer photo \d+ replaced it/);

    // explain <student key>: the student's current photo, and both photos' stories.
    const key = story?.ledger[0]?.studentKey as string;
    const byKey = await runCli(['explain', key], env);
    expect(byKey.code).toBe(0);
    expect(byKey.stdout).toContain(`Student ${key}: current photo ${newer.id}`);
    expect(byKey.stdout).toContain(`Photo ${first.id}`);
    expect(byKey.stdout).toContain(`Photo ${newer.id}`);

    // The rest in-process (same code the command runs), to keep the test quick.
    const text = async (q: string) => formatExplanation(await explain(db.knex, undefined, q));
    // A held photo: why it was not stored.
    expect(await text(String(held[0]?.id))).toMatch(/was put ON_HOLD in CloudCard .* Reason: .*Card office: check the student ID/);
    // Stored but not acknowledged.
    expect(await text(String(third.id))).toMatch(/CloudCard has not been told yet; the next run acknowledges it/);
    // Never seen.
    expect(await text('999999')).toMatch(/Nothing recorded for "999999"/);
  });
});
