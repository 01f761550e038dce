/**
 * The design's invariants, each against real parts: runSync with a real CloudCardClient talking to the
 * simulator on loopback, and a real SQLite database file (its own read-only connection checks what is
 * committed at the moment CloudCard is told).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudCardClient } from '../src/cloudcard/client.js';
import { parseMapping, type MappingInput } from '../src/config/mapping.js';
import { silentLogger } from '../src/log.js';
import { runSync, type SyncDeps } from '../src/sync.js';
import { openDatabase } from '../src/target/connection.js';
import { migrateLatest } from '../src/target/migrate.js';
import { PhotoWriter } from '../src/target/writer.js';
import { startSimulator, type SimulatorOptions } from '../src/simulator/index.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const PHOTO_TABLE: MappingInput = {
  studentKey: { from: 'identifier', clean: { trim: true, zeroPad: 9 } },
  target: { table: 'photos', keyColumn: 'student_id', blobColumn: 'photo', columns: { photo_id: { from: 'photo.id' } } },
};

async function setup(simOpts: SimulatorOptions, mappingInput: MappingInput = PHOTO_TABLE, extra: Partial<SyncDeps> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'cc-sync-'));
  const file = path.join(dir, 'campus.sqlite');
  const knex = openDatabase(`sqlite:${file}`);
  const sim = await startSimulator(simOpts);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => knex.destroy(), () => sim.close());
  await migrateLatest(knex);
  await knex.schema.createTable('photos', (t) => {
    t.string('student_id', 20).primary();
    t.binary('photo').notNullable();
    t.bigInteger('photo_id');
  });
  const mapping = parseMapping(mappingInput);
  const deps: SyncDeps = {
    client: new CloudCardClient({ baseUrl: sim.baseUrl, accessToken: sim.accessToken, retryBaseMs: 5 }),
    knex,
    writer: new PhotoWriter({ knex, target: mapping.target }),
    mapping,
    concurrency: 8,
    pageSize: 1000,
    logger: silentLogger,
    ...extra,
  };
  return { sim, knex, deps, file };
}

const canonical = (identifier: string | null | undefined) => (identifier ?? '').trim().padStart(9, '0');

describe('runSync invariants', () => {
  it('acknowledges a photo only after the transaction that stored it committed (invariant 1)', async () => {
    const { sim, deps, file } = await setup({ photoCount: 25 });
    // A second, independent connection sees only committed data: at the moment CloudCard is told, the
    // ledger row and the blob must already be there.
    const reader = new Database(file, { readonly: true });
    cleanups.push(() => void reader.close());
    const seenAtAck: Array<{ id: number; ledger: boolean; blob: boolean }> = [];
    sim.onStatusChange((photo) => {
      if (photo.status !== 'DOWNLOADED') return;
      const ledger = reader.prepare('select count(*) n from cloudcard_ledger where photo_id = ?').get(photo.id) as { n: number };
      const blob = reader.prepare('select count(*) n from photos where photo_id = ?').get(photo.id) as { n: number };
      seenAtAck.push({ id: photo.id, ledger: ledger.n === 1, blob: blob.n === 1 });
    });
    const summary = await runSync(deps);
    expect(summary.counts.stored).toBe(25);
    expect(seenAtAck).toHaveLength(25);
    expect(seenAtAck.filter((s) => !s.ledger || !s.blob)).toEqual([]);
  });

  it('rolls back and leaves the photo unacknowledged when the transaction fails', async () => {
    const { sim, knex, deps } = await setup({ photoCount: 6 });
    let calls = 0;
    const summary = await runSync(deps, {
      hooks: {
        afterWrite: () => {
          if (++calls === 3) throw new Error('disk full (injected)');
        },
      },
    });
    expect(summary.counts.stored).toBe(5);
    expect(summary.counts.left).toBe(1);
    const failed = summary.problems.find((p) => p.kind === 'left')!;
    expect(failed.reason).toContain('disk full (injected)');
    expect(sim.photo(failed.photoId)!.status).toBe('READY_FOR_DOWNLOAD');
    expect(await knex('photos').where({ photo_id: failed.photoId })).toHaveLength(0);
    expect(await knex('cloudcard_ledger').where({ photo_id: failed.photoId })).toHaveLength(0);
    // The next run picks it up.
    const again = await runSync(deps);
    expect(again.counts.stored).toBe(1);
    expect(sim.photo(failed.photoId)!.status).toBe('DOWNLOADED');
  });

  it('keeps the newest photo of a student, acknowledges both, whatever the order (invariant 4)', async () => {
    const { sim, knex, deps } = await setup({ photoCount: 0 });
    const person = { identifier: '000555001', customFields: {} };
    // The newer photo has the lower id, so id order and date order disagree.
    const newer = sim.addPhoto({ person, dateCreated: '2024-08-27T18:19:54+0000' });
    const older = sim.addPhoto({ person, dateCreated: '2022-09-01T16:43:47Z' });
    const sameDateHigherId = sim.addPhoto({ person: { identifier: '000555002', customFields: {} }, dateCreated: '2023-01-01T00:00:00Z' });
    const sameDateLowerIdFirst = sim.addPhoto({ person: { identifier: '000555002', customFields: {} }, dateCreated: '2023-01-01T00:00:00Z' });
    const summary = await runSync(deps);
    expect(summary.counts.stored + summary.counts.superseded).toBe(4);
    expect(summary.counts.acknowledged).toBe(4);
    const rows = await knex('photos').orderBy('student_id');
    expect(rows.map((r) => Number(r.photo_id))).toEqual([newer.id, sameDateLowerIdFirst.id]);
    expect(Buffer.from(rows[0].photo).equals(sim.photo(newer.id)!.bytes)).toBe(true);
    for (const p of [newer, older, sameDateHigherId, sameDateLowerIdFirst]) expect(sim.photo(p.id)!.status).toBe('DOWNLOADED');
  });

  it('pages through every photo past 1000 while the list shrinks and grows, each stored once', async () => {
    const { sim, knex, deps } = await setup({ photoCount: 1300, imageBytes: 2000, pngEvery: 0 });
    // The card office approves more photos while the run is under way.
    let added = 0;
    sim.onStatusChange(() => {
      if (added < 40 && Math.random() < 0.05) {
        added++;
        sim.addPhoto({ person: { identifier: String(700_000_000 + added), customFields: {} } });
      }
    });
    const summary = await runSync({ ...deps, concurrency: 16 });
    const total = 1300 + added;
    expect(summary.counts.found).toBe(total);
    expect(summary.counts.stored + summary.counts.superseded).toBe(total);
    expect(sim.photos().filter((p) => p.status !== 'DOWNLOADED')).toEqual([]);
    const ledger = await knex('cloudcard_ledger').count({ n: '*' });
    expect(Number(ledger[0]!.n)).toBe(total);
    // Every list call stayed within CloudCard's page limit.
    expect(sim.requests().filter((r) => r.path.startsWith('/api/photo?')).every((r) => /max=1000\b/.test(r.path))).toBe(true);
  });

  it('acknowledges committed but unacknowledged photos on the next run without writing again (invariant 3)', async () => {
    const { sim, knex, deps } = await setup({ photoCount: 5 });
    // CloudCard is unreachable for every status PUT in the first run: the photos commit but stay unacknowledged.
    sim.faults.add({ kind: 'status503', match: { method: 'PUT' }, times: Infinity });
    const first = await runSync({ ...deps, client: new CloudCardClient({ baseUrl: sim.baseUrl, accessToken: sim.accessToken, retryBaseMs: 1, maxRetries: 1 }) });
    expect(first.counts.stored).toBe(5);
    expect(first.counts.acknowledged).toBe(0);
    expect(sim.photos().every((p) => p.status === 'READY_FOR_DOWNLOAD')).toBe(true);
    const before = await knex('photos').select('student_id', 'photo');
    sim.faults.clear();
    const second = await runSync(deps);
    expect(second.counts.stored).toBe(0);
    expect(second.counts.acknowledged).toBe(5);
    expect(sim.photos().every((p) => p.status === 'DOWNLOADED')).toBe(true);
    expect(await knex('photos').select('student_id', 'photo')).toEqual(before);
    const unacked = await knex('cloudcard_ledger').whereNull('acknowledged_at');
    expect(unacked).toHaveLength(0);
  });

  it('resolves keys with the clean-ups: trimmed and zero-padded identifiers land on the right student', async () => {
    const { sim, knex, deps } = await setup({ photoCount: 20 });
    await runSync(deps);
    const rows = await knex('photos').select('student_id', 'photo_id');
    for (const r of rows) {
      expect(r.student_id).toBe(canonical(sim.photo(Number(r.photo_id))!.person.identifier));
    }
    expect(rows.some((r) => sim.photo(Number(r.photo_id))!.person.identifier !== r.student_id)).toBe(true);
  });
});
