/**
 * One suite, run once per database: the writer, migrations, lookup and run lock against a real server.
 * PostgreSQL and MariaDB come from TEST_PG_URL / TEST_MYSQL_URL (or Docker); SQLite always runs.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TargetMapping } from '../src/config/mapping.js';
import { PhotoError } from '../src/errors.js';
import { dialectName } from '../src/target/connection.js';
import { migrateLatest, migrateRollbackAll, migrationStatus } from '../src/target/migrate.js';
import { acquireRunLock, advisoryKey } from '../src/target/run-lock.js';
import type { StoreRequest } from '../src/target/types.js';
import { PhotoWriter } from '../src/target/writer.js';
import { DIALECTS, type AcquiredDatabase } from './support/databases.js';

/** Random bytes that start like a JPEG, so a truncated or re-encoded blob cannot pass for the original. */
function jpeg(size: number): Buffer {
  const b = randomBytes(size);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  return b;
}

let nextPhotoId = 1000;
function request(studentKey: string | number, opts: Partial<StoreRequest> & { size?: number } = {}): StoreRequest {
  const bytes = opts.bytes ?? jpeg(opts.size ?? 2048);
  return {
    photoId: nextPhotoId++,
    version: 1,
    studentKey,
    photoDate: '2026-01-01T00:00:00.000Z',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    contentType: 'image/jpeg',
    columns: {},
    runId: '00000000-0000-0000-0000-000000000001',
    ...opts,
    bytes,
  };
}

function blobType(k: Knex): string {
  return { postgres: 'bytea', mysql: 'longblob', mssql: 'varbinary(max)', oracle: 'blob', sqlite: 'blob' }[dialectName(k)];
}

describe.each(DIALECTS)('target on $name', (dialect) => {
  let db: AcquiredDatabase | undefined;
  let skipReason: string | undefined;
  let knex: Knex;
  let schema: string | undefined;
  let tableCount = 0;

  beforeAll(async () => {
    const got = await dialect.acquire();
    if ('skip' in got) return void (skipReason = got.skip);
    db = got;
    knex = got.knex;
    schema = got.schema;
    await migrateLatest(knex, schema);
  });
  afterAll(async () => {
    await db?.close();
  });

  /** it() that skips with the reason when this dialect has no database here. */
  const dbIt = (name: string, fn: () => Promise<void>) =>
    it(name, async (ctx) => {
      if (!db) ctx.skip(skipReason);
      await fn();
    });

  /** Creates a photo table in this run's namespace; returns its (schema-qualified) name. */
  async function photoTable(opts: { name?: string; key?: string; blob?: string; unique?: boolean; notNullExtra?: string } = {}): Promise<string> {
    const name = opts.name ?? `photos_${++tableCount}`;
    const key = opts.key ?? 'student_id';
    const blob = opts.blob ?? 'photo';
    await knex.schema.withSchema(schema as string).createTable(name, (t) => {
      if (opts.unique === false) t.string(key, 32).notNullable();
      else t.string(key, 32).notNullable().primary(`${name.slice(0, 20)}_pk`);
      t.specificType(blob, blobType(knex)).nullable();
      t.bigInteger('photo_id').nullable();
      if (opts.notNullExtra) t.string(opts.notNullExtra, 32).notNullable();
    });
    return schema ? `${schema}.${name}` : name;
  }

  function writer(target: Partial<TargetMapping> & { table: string }, lookupSql?: string): PhotoWriter {
    return new PhotoWriter({
      knex,
      jobSchema: schema,
      lookupSql,
      target: { keyColumn: 'student_id', blobColumn: 'photo', mode: 'upsert', keyIsUnique: true, keyType: 'string', columns: {}, ...target },
    });
  }

  async function blobOf(table: string, key: string, keyCol = 'student_id', blobCol = 'photo'): Promise<Buffer[]> {
    const rows = (await knex(table).where(keyCol, key).select(blobCol)) as Array<Record<string, Buffer>>;
    return rows.map((r) => Buffer.from(r[blobCol] as Buffer));
  }

  async function ledgerCount(w: PhotoWriter, photoId: number, version = 1): Promise<number> {
    return (await w.ledgerEntry(photoId, version)) ? 1 : 0;
  }

  dbIt('migrations go down and up again', async () => {
    expect((await migrationStatus(knex, schema)).pending).toEqual([]);
    await migrateRollbackAll(knex, schema);
    expect((await migrationStatus(knex, schema)).applied).toEqual([]);
    expect(await knex.schema.withSchema(schema as string).hasTable('cloudcard_ledger')).toBe(false);
    await migrateLatest(knex, schema);
    expect(await knex.schema.withSchema(schema as string).hasTable('cloudcard_ledger')).toBe(true);
    expect((await migrationStatus(knex, schema)).pending).toEqual([]);
  });

  dbIt('inserts a new student photo, then updates it, byte-exact for 20 KB, 150 KB and 5 MB', async () => {
    const table = await photoTable();
    const w = writer({ table, columns: {} });
    for (const size of [20_000, 150_000, 5 * 1024 * 1024 + 17]) {
      const req = request('S1', { size, photoDate: new Date(Date.now() + size).toISOString() });
      expect(await w.store(req)).toEqual({ kind: 'stored' });
      const blobs = await blobOf(table, 'S1');
      expect(blobs).toHaveLength(1);
      expect(blobs[0]!.equals(req.bytes)).toBe(true);
      const entry = await w.ledgerEntry(req.photoId, 1);
      expect(entry).toMatchObject({ photo_id: req.photoId, outcome: 'stored', byte_length: size, sha256: req.sha256, acknowledged_at: null });
    }
  });

  dbIt('writes extra columns in the same statement', async () => {
    const table = await photoTable();
    const w = writer({ table });
    const req = request('S2', { columns: { photo_id: 4242 } });
    await w.store(req);
    const row = (await knex(table).where('student_id', 'S2').first('photo_id')) as { photo_id: unknown };
    expect(Number(row.photo_id)).toBe(4242);
  });

  dbIt('update mode leaves students without a row alone (no row, no ledger row)', async () => {
    const table = await photoTable();
    await knex(table).insert({ student_id: 'EXISTS' });
    const w = writer({ table, mode: 'update' });
    const missing = request('MISSING');
    expect(await w.store(missing)).toEqual({ kind: 'no-student-row' });
    expect(await blobOf(table, 'MISSING')).toHaveLength(0);
    expect(await w.ledgerEntry(missing.photoId, 1)).toBeUndefined();
    const present = request('EXISTS');
    expect(await w.store(present)).toEqual({ kind: 'stored' });
    expect((await blobOf(table, 'EXISTS'))[0]!.equals(present.bytes)).toBe(true);
  });

  dbIt('insert mode adds a row per photo', async () => {
    const table = await photoTable({ unique: false });
    const w = writer({ table, mode: 'insert', keyIsUnique: false });
    await w.store(request('H1', { photoDate: '2026-01-01T00:00:00.000Z' }));
    await w.store(request('H1', { photoDate: '2026-01-02T00:00:00.000Z' }));
    expect(await blobOf(table, 'H1')).toHaveLength(2);
  });

  dbIt('the lookup query resolves a key (Banner-like SPRIDEN_ID → SPRIDEN_PIDM)', async () => {
    const name = `SPRIDEN_${++tableCount}`;
    await knex.schema.withSchema(schema as string).createTable(name, (t) => {
      t.string('SPRIDEN_ID', 9);
      t.integer('SPRIDEN_PIDM');
    });
    const qualified = schema ? `${schema}.${name}` : name;
    await knex(qualified).insert([
      { SPRIDEN_ID: 'A00012345', SPRIDEN_PIDM: 777 },
      { SPRIDEN_ID: 'A00099999', SPRIDEN_PIDM: 1 },
      { SPRIDEN_ID: 'A00099999', SPRIDEN_PIDM: 2 },
    ]);
    const table = knex.raw('??', [qualified]).toQuery();
    const w = writer({ table: 'unused' }, `select "SPRIDEN_PIDM" from ${table} where "SPRIDEN_ID" = :key`.replace(/"/g, dialectName(knex) === 'mysql' ? '`' : '"'));
    expect(Number(await w.lookupKey('A00012345'))).toBe(777);
    expect(await w.lookupKey('NOBODY')).toBeNull();
    const err = await w.lookupKey('A00099999').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PhotoError);
    expect((err as PhotoError).code).toBe('ambiguous-key');
    expect((err as PhotoError).message).toContain('A00099999');
  });

  dbIt('a failure inside the transaction rolls everything back (NOT NULL extra column, afterWrite throwing)', async () => {
    const table = await photoTable({ notNullExtra: 'required_col' });
    const w = writer({ table });
    const bad = request('R1', { columns: { required_col: null } });
    await expect(w.store(bad)).rejects.toThrow();
    expect(await w.ledgerEntry(bad.photoId, 1)).toBeUndefined();
    expect(await blobOf(table, 'R1')).toHaveLength(0);

    const thrown = request('R1', { columns: { required_col: 'x' } });
    await expect(w.store(thrown, { afterWrite: () => { throw new Error('boom after write'); } })).rejects.toThrow('boom after write');
    expect(await w.ledgerEntry(thrown.photoId, 1)).toBeUndefined();
    expect(await blobOf(table, 'R1')).toHaveLength(0);
    expect(await knex(schema ? `${schema}.cloudcard_student_photo` : 'cloudcard_student_photo').where('student_key', 'R1').whereNotNull('photo_id')).toHaveLength(0);
    // The same photo stores fine afterwards: nothing half-written stands in its way.
    expect(await w.store(thrown)).toEqual({ kind: 'stored' });
  });

  dbIt('the same photo id + version twice: second is already-stored and the blob is not rewritten', async () => {
    const table = await photoTable();
    const w = writer({ table });
    const req = request('D1');
    expect(await w.store(req)).toEqual({ kind: 'stored' });
    expect(await w.store({ ...req, bytes: jpeg(100) })).toEqual({ kind: 'already-stored' });
    expect((await blobOf(table, 'D1'))[0]!.equals(req.bytes)).toBe(true);
  });

  dbIt('an older photo after a newer one is superseded; the table keeps the newer', async () => {
    const table = await photoTable();
    const w = writer({ table });
    const newer = request('O1', { photoDate: '2026-03-01T00:00:00.000Z' });
    const older = request('O1', { photoDate: '2026-02-01T00:00:00.000Z' });
    expect(await w.store(newer)).toEqual({ kind: 'stored' });
    expect(await w.store(older)).toEqual({ kind: 'superseded', byPhotoId: newer.photoId });
    expect((await blobOf(table, 'O1'))[0]!.equals(newer.bytes)).toBe(true);
    expect((await w.ledgerEntry(older.photoId, 1))?.outcome).toBe('superseded');
  });

  dbIt('concurrent stores for one student: the newest wins, one ledger row each', async () => {
    const table = await photoTable();
    const w = writer({ table });
    const reqs = [3, 1, 5, 2, 6, 4].map((d) => request('C1', { photoDate: `2026-04-0${d}T00:00:00.000Z` }));
    const outcomes = await Promise.all(reqs.map((r) => w.store(r)));
    expect(outcomes.every((o) => o.kind === 'stored' || o.kind === 'superseded')).toBe(true);
    const newest = reqs[4]!;
    expect((await blobOf(table, 'C1'))[0]!.equals(newest.bytes)).toBe(true);
    for (const r of reqs) expect(await ledgerCount(w, r.photoId)).toBe(1);
    const ledger = schema ? `${schema}.cloudcard_ledger` : 'cloudcard_ledger';
    expect(await knex(ledger).where('student_key', 'C1')).toHaveLength(6);
  });

  dbIt(dialect.name === 'sqlite' ? 'schema-qualified table names (skipped: SQLite has no schemas)' : 'schema-qualified table names', async () => {
    if (dialect.name === 'sqlite') return; // SQLite has no schemas; every other case here already uses an unqualified table.
    const table = await photoTable();
    expect(table).toContain('.');
    const w = writer({ table });
    const req = request('Q1');
    expect(await w.store(req)).toEqual({ kind: 'stored' });
    expect((await blobOf(table, 'Q1'))[0]!.equals(req.bytes)).toBe(true);
  });

  dbIt('mixed-case and upper-case identifiers are kept exactly', async () => {
    const table = await photoTable({ name: `StudentPhotos${++tableCount}`, key: 'STUDENT_ID', blob: 'PhotoBlob' });
    const w = writer({ table, keyColumn: 'STUDENT_ID', blobColumn: 'PhotoBlob' });
    const req = request('M1');
    expect(await w.store(req)).toEqual({ kind: 'stored' });
    const again = request('M1', { photoDate: '2026-05-01T00:00:00.000Z' });
    expect(await w.store(again)).toEqual({ kind: 'stored' });
    const blobs = await blobOf(table, 'M1', 'STUDENT_ID', 'PhotoBlob');
    expect(blobs).toHaveLength(1);
    expect(blobs[0]!.equals(again.bytes)).toBe(true);
  });

  dbIt('a key column without a unique constraint: upsert twice leaves exactly one row', async () => {
    const table = await photoTable({ unique: false });
    const w = writer({ table, keyIsUnique: false });
    await w.store(request('U1', { photoDate: '2026-01-01T00:00:00.000Z' }));
    const second = request('U1', { photoDate: '2026-01-02T00:00:00.000Z' });
    await w.store(second);
    const blobs = await blobOf(table, 'U1');
    expect(blobs).toHaveLength(1);
    expect(blobs[0]!.equals(second.bytes)).toBe(true);
  });

  dbIt('markAcknowledged records 3000 keys in batches', async () => {
    const ledger = schema ? `${schema}.cloudcard_ledger` : 'cloudcard_ledger';
    const base = 9_000_000;
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      photo_id: base + i,
      version: (i % 3) + 1,
      student_key: `ACK${i}`,
      photo_date: '2026-01-01T00:00:00.000Z',
      byte_length: 1,
      sha256: '0'.repeat(64),
      outcome: 'stored',
      committed_at: new Date(),
      acknowledged_at: null,
      run_id: 'r',
    }));
    await knex.batchInsert(ledger, rows, 200);
    const w = writer({ table: 'unused' });
    expect((await w.unacknowledged(5000)).filter((r) => r.photo_id >= base)).toHaveLength(3000);
    await w.markAcknowledged(rows.map((r) => ({ photoId: r.photo_id, version: r.version })));
    expect((await w.unacknowledged(5000)).filter((r) => r.photo_id >= base)).toHaveLength(0);
    expect((await w.ledgerEntry(base + 2999, 1))?.acknowledged_at).not.toBeNull();
  });

  dbIt('run lock: a second acquire fails while held, succeeds after release', async () => {
    const name = `lock-${randomBytes(3).toString('hex')}`;
    const first = await acquireRunLock(knex, name, { jobSchema: schema });
    expect(first).not.toBeNull();
    expect(await acquireRunLock(knex, name, { jobSchema: schema })).toBeNull();
    await first!.release();
    const again = await acquireRunLock(knex, name, { jobSchema: schema });
    expect(again).not.toBeNull();
    await again!.release();
  });

  dbIt('run lock: released when the holding connection dies (session-lock databases)', async () => {
    if (dialect.name !== 'postgres' && dialect.name !== 'mysql') return; // SQLite: heartbeat; others need Docker
    const name = `lock-${randomBytes(3).toString('hex')}`;
    // The lock is scoped to the schema holding the job's tables.
    const opts = { jobSchema: schema! };
    const held = await acquireRunLock(knex, name, opts);
    expect(held).not.toBeNull();
    expect(await acquireRunLock(knex, name, opts)).toBeNull();
    // Another job, with its ledger in another schema, is not held up.
    const other = await acquireRunLock(knex, name);
    expect(other).not.toBeNull();
    await other!.release();
    // Kill the holder's session from the server side, as a crashed process or a dropped network would.
    if (dialect.name === 'postgres') {
      await knex.raw(
        "select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory' and granted and ((classid::bigint << 32) | objid::bigint) = ?::bigint",
        [advisoryKey(`${schema}:${name}`)],
      );
    } else {
      const [rows] = (await knex.raw('select is_used_lock(?) as id', [`cloudcard-sync:${schema}:${name}`])) as [Array<{ id: number }>];
      await knex.raw(`kill ${Number(rows[0]!.id)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
    const taken = await acquireRunLock(knex, name, opts);
    expect(taken).not.toBeNull();
    await taken!.release();
    await held!.release().catch(() => undefined); // its connection is gone; this only returns it to the pool
  });
});
