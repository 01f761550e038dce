/**
 * Crash safety with a real process and a real PostgreSQL: the built CLI (`node dist/src/cli.js run`) is
 * SIGKILLed at a failpoint (src/failpoints.ts) or loses its database mid-run, then run again. Afterwards,
 * photo by photo: in the table exactly once with the simulator's bytes, DOWNLOADED in CloudCard, and the ledger
 * agreeing with both; and right after the crash, nothing is DOWNLOADED that is not stored.
 *
 * Needs TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test); skipped with the reason printed otherwise.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { JOB_TABLES, jobTable } from '../src/target/job-tables.js';
import { auditPhotos, problems, type AuditReport } from './support/photo-audit.js';
import { startHarness, type Harness } from './support/sync-harness.js';
import { startTcpProxy } from './support/tcp-proxy.js';
import { buildIfStale, runCli } from './support/cli.js';

const PG_URL = process.env.TEST_PG_URL;
const SKIP = PG_URL ? undefined : 'crash tests skipped: set TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test (they need a real PostgreSQL)';
if (SKIP) console.log(SKIP);

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

async function setup(ctx: TestContext, photoCount: number, latencyMs = 0): Promise<{ h: Harness; env: Record<string, string> }> {
  if (SKIP) ctx.skip(SKIP);
  const h = await startHarness({ dialect: 'postgres', sim: { photoCount, latencyMs } });
  if (typeof h === 'string') {
    console.log(h);
    ctx.skip(h);
    throw new Error('unreachable');
  }
  open.push(() => h.close());
  const dir = mkdtempSync(path.join(tmpdir(), 'cc-crash-'));
  open.push(async () => rmSync(dir, { recursive: true, force: true }));
  const env = {
    CLOUDCARD_BASE_URL: h.sim.baseUrl,
    CLOUDCARD_ACCESS_TOKEN: h.sim.accessToken,
    DATABASE_URL: h.db.url,
    CLOUDCARD_SYNC_SCHEMA: h.schema!,
    CLOUDCARD_SYNC_MAPPING: h.writeMappingFile(dir),
    CLOUDCARD_SYNC_CONCURRENCY: '2',
    CLOUDCARD_SYNC_PAGE_SIZE: '25',
  };
  return { h, env };
}

const audit = (h: Harness): Promise<AuditReport> => auditPhotos({ sim: h.sim, knex: h.knex, photoLog: h.tables.photoLog, jobSchema: h.schema });

/** What must hold at any moment, even right after a crash: nothing acknowledged that is not stored, nothing written twice. */
async function expectSafeMidway(h: Harness): Promise<AuditReport> {
  const r = await audit(h);
  expect(r.acknowledgedNotStored).toEqual([]);
  expect(r.writtenTwice).toEqual([]);
  expect(r.wrongBytes).toEqual([]);
  expect(r.ledgerDisagrees.filter((d) => !/never acknowledged|the ledger says unacknowledged/.test(d))).toEqual([]);
  return r;
}

async function expectFinal(h: Harness): Promise<void> {
  const r = await audit(h);
  expect(problems(r)).toEqual({});
  expect(r.downloaded).toBe(h.sim.photos().length);
  // Exactly once per photo: no photo was replaced here, so one row per photo id.
  const perPhoto = (await h.knex(h.tables.photoLog).select('CLOUDCARD_PHOTO_ID').count({ n: '*' }).groupBy('CLOUDCARD_PHOTO_ID')) as Array<{ n: string }>;
  expect(perPhoto).toHaveLength(h.sim.photos().length);
  expect(perPhoto.every((row) => Number(row.n) === 1)).toBe(true);
}

async function ledger(h: Harness): Promise<Array<{ photo_id: number; acknowledged: boolean }>> {
  const rows = (await h.knex(jobTable(JOB_TABLES.ledger, h.schema)).select('photo_id', 'acknowledged_at')) as Array<{ photo_id: string; acknowledged_at: unknown }>;
  return rows.map((r) => ({ photo_id: Number(r.photo_id), acknowledged: r.acknowledged_at != null }));
}

describe('crash safety: SIGKILL at each failpoint, then run again (PostgreSQL)', () => {
  beforeAll(() => {
    if (!SKIP) buildIfStale();
  }, 120_000);

  it('(a) after download, before COMMIT: nothing of that photo is written; the next run stores it', async (ctx) => {
    const { h, env } = await setup(ctx, 10);
    const crashed = await runCli(['run', '--no-progress'], { ...env, CLOUDCARD_SYNC_FAILPOINTS: 'after-download:4' });
    expect(crashed.signal).toBe('SIGKILL');
    expect(crashed.stderr).toContain('failpoint after-download:4 reached');
    const midway = await expectSafeMidway(h);
    expect(midway.lost.length).toBeGreaterThan(0);
    const runs = () => h.knex(jobTable(JOB_TABLES.runs, h.schema)).orderBy('started_at').select('status', 'error_summary');
    expect((await runs()).map((r) => r.status)).toEqual(['running']);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
    // The killed run's history row is closed by the next run, not left "running" forever.
    const history = await runs();
    expect(history.map((r) => r.status)).toEqual(['interrupted', 'ok']);
    expect(history[0]!.error_summary).toMatch(/process ended before the run finished/);
  });

  it('(a) inside the transaction, just before COMMIT: rolled back, then stored once by the next run', async (ctx) => {
    const { h, env } = await setup(ctx, 10);
    const crashed = await runCli(['run', '--no-progress'], { ...env, CLOUDCARD_SYNC_FAILPOINTS: 'before-commit:3' });
    expect(crashed.signal).toBe('SIGKILL');
    const midway = await expectSafeMidway(h);
    // The third photo's transaction had written everything but never committed: at most two are in the ledger.
    expect((await ledger(h)).length).toBeLessThanOrEqual(2);
    expect(midway.lost.length).toBeGreaterThanOrEqual(8);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
  });

  it('(b) after COMMIT, before the acknowledgement: the next run acknowledges without writing again', async (ctx) => {
    const { h, env } = await setup(ctx, 10);
    const crashed = await runCli(['run', '--no-progress'], { ...env, CLOUDCARD_SYNC_FAILPOINTS: 'after-commit:3' });
    expect(crashed.signal).toBe('SIGKILL');
    await expectSafeMidway(h);
    // Committed and still READY in CloudCard: the window this failpoint opens.
    const committedNotTold = (await ledger(h)).filter((l) => h.sim.photo(l.photo_id)!.status === 'READY_FOR_DOWNLOAD');
    expect(committedNotTold.length).toBeGreaterThanOrEqual(1);
    const rowsBefore = Number((await h.knex(h.tables.photoLog).count({ n: '*' }))[0]?.n);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
    // The committed photos were not written again: exactly the missing ones were added.
    expect(Number((await h.knex(h.tables.photoLog).count({ n: '*' }))[0]?.n)).toBe(10);
    expect(rowsBefore).toBeGreaterThanOrEqual(3);
    for (const l of committedNotTold) expect(h.sim.photo(l.photo_id)!.statusHistory.filter((e) => e.status === 'DOWNLOADED')).toHaveLength(1);
  });

  it('(c) during the acknowledgement (CloudCard marked, ledger not): the next run settles the ledger, marks nothing twice', async (ctx) => {
    const { h, env } = await setup(ctx, 10);
    const crashed = await runCli(['run', '--no-progress'], { ...env, CLOUDCARD_SYNC_FAILPOINTS: 'during-ack:3' });
    expect(crashed.signal).toBe('SIGKILL');
    await expectSafeMidway(h);
    const toldNotNoted = (await ledger(h)).filter((l) => !l.acknowledged && h.sim.photo(l.photo_id)!.status === 'DOWNLOADED');
    expect(toldNotNoted.length).toBeGreaterThanOrEqual(1);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
    for (const p of h.sim.photos()) expect(p.statusHistory.filter((e) => e.status === 'DOWNLOADED')).toHaveLength(1);
  });

  it('crash after crash at every point, then a clean run: still exactly once', async (ctx) => {
    const { h, env } = await setup(ctx, 16);
    for (const point of ['after-download:2', 'before-commit:2', 'after-commit:2', 'during-ack:2']) {
      const crashed = await runCli(['run', '--no-progress'], { ...env, CLOUDCARD_SYNC_FAILPOINTS: point });
      expect(crashed.signal, `${point}: ${crashed.stderr}`).toBe('SIGKILL');
      await expectSafeMidway(h);
    }
    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
  });

  it('database gone mid-run (connections cut, new ones refused): exit 4, nothing acknowledged that did not commit; the next run completes', async (ctx) => {
    const { h, env } = await setup(ctx, 30, 40);
    const target = new URL(PG_URL!);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    let cut: Promise<void> | undefined;
    open.push(async () => {
      await (cut ?? proxy.close());
    });
    let downloaded = 0;
    h.sim.onStatusChange((p) => {
      if (p.status === 'DOWNLOADED' && ++downloaded === 4) cut = proxy.close();
    });
    const viaProxy = new URL(h.db.url);
    viaProxy.port = String(proxy.port);
    const failed = await runCli(['run', '--no-progress'], { ...env, DATABASE_URL: viaProxy.toString() });
    expect(failed.code, failed.stderr).toBe(4);
    expect(failed.stderr).toMatch(/database/i);
    expect(cut).toBeDefined();
    const midway = await expectSafeMidway(h);
    expect(midway.downloaded).toBeGreaterThanOrEqual(4);
    expect(midway.lost.length).toBeGreaterThan(0);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
  });

  it('backends killed mid-run (pg_terminate_backend): exit 4, nothing acknowledged that did not commit; the next run completes', async (ctx) => {
    const { h, env } = await setup(ctx, 30, 40);
    const app = `cc_crash_${h.schema}`;
    const url = new URL(h.db.url);
    url.searchParams.set('application_name', app);
    // Killing an idle pooled connection is harmless (the pool replaces it), so keep killing the job's
    // backends for a while from the 4th acknowledgement on, until one dies in the middle of a statement.
    let downloaded = 0;
    let killing: Promise<void> | undefined;
    let childDone = false;
    const killLoop = async () => {
      for (let i = 0; i < 200 && !childDone; i++) {
        await h.knex.raw('select pg_terminate_backend(pid) from pg_stat_activity where application_name = ?', [app]);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    h.sim.onStatusChange((p) => {
      if (p.status === 'DOWNLOADED' && ++downloaded === 4) killing = killLoop();
    });
    const failed = await runCli(['run', '--no-progress'], { ...env, DATABASE_URL: url.toString() });
    childDone = true;
    await killing;
    expect(failed.code, failed.stderr).toBe(4);
    expect(failed.stderr).toMatch(/Lost the database connection/);
    await expectSafeMidway(h);

    const again = await runCli(['run', '--no-progress'], env);
    expect(again.code, again.stderr).toBe(0);
    await expectFinal(h);
  });
});
