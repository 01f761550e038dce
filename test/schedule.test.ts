/**
 * The daemon as campus IT runs it: `cloudcard-sync schedule` as a child process against the simulator.
 * SIGTERM mid-run stops it cleanly (every photo stored and acknowledged, or untouched); a tick during a run is
 * skipped; two daemons on one PostgreSQL database never store a photo twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { checkCronExpression } from '../src/schedule.js';
import { startSimulator, type Simulator } from '../src/simulator/index.js';
import { countRows, postgresCampus, sqliteCampus, syncEnv, type CampusDb } from './support/cli-e2e.js';
import { type CliProcess, startCli } from './support/cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function simulator(photoCount: number, latencyMs: number): Promise<Simulator> {
  // seed 1 and every 9th person unmatched: the people seedDemoStudents created students for.
  const sim = await startSimulator({ photoCount, latencyMs, seed: 1, unmatchedEvery: 9, imageBytes: 4_000 });
  cleanups.push(() => sim.close());
  return sim;
}

function daemon(sim: Simulator, db: CampusDb, args: string[], env: Record<string, string> = {}): CliProcess {
  const p = startCli(['schedule', ...args], syncEnv(sim, db, { CLOUDCARD_SYNC_CONCURRENCY: '2', ...env }));
  cleanups.push(async () => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  });
  return p;
}

/** Every photo ends either stored and acknowledged, held with a reason, or untouched: never acknowledged without a stored row. */
async function expectNothingHalfDone(sim: Simulator, db: CampusDb): Promise<{ downloaded: number; ready: number }> {
  const ledger = (await db.knex('cloudcard_ledger').select('photo_id', 'acknowledged_at')) as Array<{ photo_id: number | string; acknowledged_at: unknown }>;
  const byId = new Map(ledger.map((r) => [Number(r.photo_id), r]));
  let downloaded = 0;
  let ready = 0;
  for (const p of sim.photos()) {
    const row = byId.get(p.id);
    if (p.status === 'DOWNLOADED') {
      downloaded++;
      expect(row, `photo ${p.id} is DOWNLOADED in CloudCard but has no ledger row`).toBeDefined();
      expect(row?.acknowledged_at, `photo ${p.id} acknowledged in CloudCard but not in the ledger`).not.toBeNull();
      const student = (await db.knex('students').where('CLOUDCARD_PHOTO_ID', p.id).first('PHOTO')) as { PHOTO: Buffer | null } | undefined;
      expect(student?.PHOTO?.length, `photo ${p.id} acknowledged but its bytes are not in the students table`).toBeGreaterThan(0);
    } else if (p.status === 'READY_FOR_DOWNLOAD') {
      ready++;
      // Untouched: a committed photo is always acknowledged before the daemon exits.
      expect(row, `photo ${p.id} stored but never acknowledged`).toBeUndefined();
    } else {
      expect(p.status).toBe('ON_HOLD');
      expect(row).toBeUndefined();
    }
  }
  return { downloaded, ready };
}

describe('cron expression', () => {
  it('accepts five and six fields and names the setting when it is wrong', () => {
    expect(() => checkCronExpression('0 2 * * *', 'CLOUDCARD_SYNC_SCHEDULE')).not.toThrow();
    expect(() => checkCronExpression('*/1 * * * * *', '--cron')).not.toThrow();
    expect(() => checkCronExpression('every night', 'CLOUDCARD_SYNC_SCHEDULE')).toThrow(/CLOUDCARD_SYNC_SCHEDULE: "every night" is not a valid cron expression/);
    expect(() => checkCronExpression('61 * * * *', '--cron')).toThrow(/--cron/);
  });
});

describe('cloudcard-sync schedule (child process)', () => {
  it('SIGTERM mid-run: stops taking photos, finishes those in flight, logs out, exits 0 within the bound; ticks during the run are skipped', async () => {
    const sim = await simulator(40, 120);
    const db = await sqliteCampus(40);
    cleanups.push(() => db.close());
    const p = daemon(sim, db, ['--cron', '*/1 * * * * *', '--run-at-start', '--stop-timeout', '5000']);

    await p.waitFor(/"msg":"photo stored"/);
    await p.waitFor(/tick skipped: the previous run is still going/, 5_000);
    const sentAt = Date.now();
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    expect(code, p.output()).toBe(0);
    expect(Date.now() - sentAt).toBeLessThan(5_000);
    expect(p.output()).toMatch(/"msg":"stopped"/);

    const { downloaded, ready } = await expectNothingHalfDone(sim, db);
    expect(downloaded).toBeGreaterThan(0);
    expect(ready, 'the stop came mid-run, so some photos should still be waiting').toBeGreaterThan(0);

    const runs = (await db.knex('cloudcard_runs').select('status', 'trigger', 'ended_at')) as Array<{ status: string; trigger: string; ended_at: unknown }>;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'stopped', trigger: 'start' });
    expect(runs[0]?.ended_at).not.toBeNull();
    // Logged out: no session left active.
    expect(sim.sessions().active).toBe(0);
  });

  it('an invalid --cron is a configuration error (exit 2) naming the flag', async () => {
    const sim = await simulator(1, 0);
    const db = await sqliteCampus(1);
    cleanups.push(() => db.close());
    const p = daemon(sim, db, ['--cron', 'every night']);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.output()).toMatch(/--cron: "every night" is not a valid cron expression/);
  });

  it('two daemons at once against PostgreSQL: each photo stored exactly once', async (ctx) => {
    const db = await postgresCampus(30);
    if ('skip' in db) {
      console.log(db.skip);
      ctx.skip();
      return;
    }
    cleanups.push(() => db.close());
    const sim = await simulator(30, 30);
    const args = ['--cron', '*/1 * * * * *', '--run-at-start', '--stop-timeout', '5000'];
    const a = daemon(sim, db, args, { CLOUDCARD_SYNC_CONCURRENCY: '4' });
    const b = daemon(sim, db, args, { CLOUDCARD_SYNC_CONCURRENCY: '4' });

    // Wait until every photo has left READY_FOR_DOWNLOAD (stored, or held as unmatched).
    const deadline = Date.now() + 20_000;
    while (sim.photos().some((p) => p.status === 'READY_FOR_DOWNLOAD') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(sim.photos().filter((p) => p.status === 'READY_FOR_DOWNLOAD')).toHaveLength(0);
    // Let at least one more tick pass with both daemons alive, then stop both.
    await new Promise((r) => setTimeout(r, 1_200));
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    const [ea, eb] = await Promise.all([a.exited, b.exited]);
    expect(ea.code, a.output()).toBe(0);
    expect(eb.code, b.output()).toBe(0);

    const dupes = await db.knex('cloudcard_ledger').select('photo_id').count({ n: '*' }).groupBy('photo_id').havingRaw('count(*) > 1');
    expect(dupes).toEqual([]);
    const downloaded = sim.photos().filter((p) => p.status === 'DOWNLOADED');
    expect(downloaded.length).toBeGreaterThan(20);
    expect(await countRows(db.knex, 'cloudcard_ledger')).toBe(downloaded.length);
    for (const p of sim.photos()) {
      expect(p.statusHistory.filter((h) => h.status === 'DOWNLOADED').length, `photo ${p.id}`).toBe(p.status === 'DOWNLOADED' ? 1 : 0);
    }
    // The lock did its job: at some tick one daemon found the other running and skipped.
    expect(a.output() + b.output()).toMatch(/tick skipped: another instance is running against this database/);
    await expectNothingHalfDone(sim, db);
  });
});
