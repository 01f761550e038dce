/**
 * The exit codes a scheduler or monitoring acts on (README "Exit codes"), each produced for real by the CLI.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../src/errors.js';
import { startSimulator, type Simulator } from '../src/simulator/index.js';
import { RUN_LOCK_NAME } from '../src/run-guard.js';
import { acquireRunLock } from '../src/target/run-lock.js';
import { sqliteCampus, syncEnv, type CampusDb } from './support/cli-e2e.js';
import { runCli } from './support/cli.js';

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

let sim: Simulator;
let db: CampusDb;
let env: Record<string, string>;

beforeAll(async () => {
  sim = await startSimulator({ photoCount: 6, seed: 1, unmatchedEvery: 9, imageBytes: 3_000 });
  db = await sqliteCampus(6);
  env = syncEnv(sim, db, { CLOUDCARD_SYNC_MAX_RETRIES: '0' });
});
afterAll(async () => {
  await sim?.close();
  await db?.close();
});

describe('exit codes', () => {
  it('1 when some photos were left, then 0 when everything is handled', async () => {
    const [photo] = sim.photos();
    sim.faults.add({ kind: 'status404', match: { method: 'GET', photoId: photo?.id }, times: Infinity });
    const partial = await runCli(['run'], env);
    expect(partial.code, partial.output).toBe(EXIT.SOME_PHOTOS_FAILED);
    expect(partial.stdout).toMatch(/left for next run +1/);
    sim.faults.clear();
    const ok = await runCli(['run'], env);
    expect(ok.code, ok.output).toBe(EXIT.OK);
    expect(ok.stdout).toMatch(/stored +1/);
  });

  it('2 for a bad mapping file and for a bad setting', async () => {
    const bad = path.join(tmpdir(), `cc-bad-mapping-${process.pid}.yaml`);
    writeFileSync(bad, 'name: broken\ntarget:\n  table: students\n');
    const mapping = await runCli(['run', '--mapping', bad], env);
    expect(mapping.code, mapping.output).toBe(EXIT.CONFIG);
    expect(mapping.output).toContain('cloudcard-sync:');
    const setting = await runCli(['run'], { ...env, CLOUDCARD_SYNC_CONCURRENCY: 'lots' });
    expect(setting.code).toBe(EXIT.CONFIG);
    expect(setting.output).toMatch(/CLOUDCARD_SYNC_CONCURRENCY/);
  });

  it('3 when CloudCard cannot be reached', async () => {
    const res = await runCli(['run'], { ...env, CLOUDCARD_BASE_URL: `http://127.0.0.1:${await closedPort()}/api` });
    expect(res.code, res.output).toBe(EXIT.CLOUDCARD_UNREACHABLE);
  });

  it('4 when the database cannot be reached', async () => {
    const res = await runCli(['run'], { ...env, DATABASE_URL: `postgres://postgres:secret-pw@127.0.0.1:${await closedPort()}/test` });
    expect(res.code, res.output).toBe(EXIT.DATABASE_UNREACHABLE);
    expect(res.output).not.toContain('secret-pw');
  });

  it('5 when another instance holds the run lock', async () => {
    // This test process plays the other instance.
    const lock = await acquireRunLock(db.knex, RUN_LOCK_NAME);
    expect(lock).not.toBeNull();
    try {
      const res = await runCli(['run'], env);
      expect(res.code, res.output).toBe(EXIT.LOCKED);
      expect(res.output).toMatch(/another instance is running/);
    } finally {
      await lock?.release();
    }
  });
});
