/**
 * The exact SQL and bindings each dialect produces, checked without any database: knex compiles statements
 * for a client with no connection. This is how the SQL Server and Oracle statements are checked where there is
 * no Docker; the integration suite runs the same statements for real where there is.
 */
import { createRequire } from 'node:module';
import knexFactory, { type Knex } from 'knex';
import { afterAll, describe, expect, it } from 'vitest';
import type { DialectName } from '../src/target/connection.js';
import { dialectByName } from '../src/target/dialects/index.js';

const CLIENTS: Record<DialectName, string> = { postgres: 'pg', mysql: 'mysql2', mssql: 'mssql', oracle: 'oracledb', sqlite: 'better-sqlite3' };
const made: Knex[] = [];
function offline(name: DialectName): Knex {
  const k = knexFactory({ client: CLIENTS[name], useNullAsDefault: true });
  made.push(k);
  return k;
}
afterAll(async () => {
  for (const k of made) await k.destroy();
});

const native = (q: Knex.Raw) => q.toSQL().toNative();
const blob = Buffer.from([0xff, 0xd8, 0xff, 0x01]);
const when = new Date('2026-01-02T03:04:05.000Z');
const target = { table: 'campus.StudentPhotos', keyColumn: 'STUDENT_ID', blobColumn: 'Photo' };
const row = { key: 'A1', blob, columns: { UpdatedAt: when } };

describe('native upsert of the target row', () => {
  it('postgres: insert ... on conflict do update, quoted and schema-qualified', () => {
    const q = native(dialectByName('postgres').upsertTarget(offline('postgres'), target, row));
    expect(q.sql).toBe(
      'insert into "campus"."StudentPhotos" ("STUDENT_ID", "Photo", "UpdatedAt") values ($1, $2, $3) ' +
        'on conflict ("STUDENT_ID") do update set "Photo" = excluded."Photo", "UpdatedAt" = excluded."UpdatedAt"',
    );
    expect(q.bindings).toEqual(['A1', blob, when]);
  });

  it('sqlite: the same form, with ? placeholders', () => {
    const q = native(dialectByName('sqlite').upsertTarget(offline('sqlite'), { ...target, table: 'StudentPhotos' }, row));
    expect(q.sql).toBe(
      'insert into `StudentPhotos` (`STUDENT_ID`, `Photo`, `UpdatedAt`) values (?, ?, ?) ' +
        'on conflict (`STUDENT_ID`) do update set `Photo` = excluded.`Photo`, `UpdatedAt` = excluded.`UpdatedAt`',
    );
    expect(q.bindings).toEqual(['A1', blob, when]);
  });

  it('mysql: insert ... on duplicate key update col = values(col)', () => {
    const q = native(dialectByName('mysql').upsertTarget(offline('mysql'), target, row));
    expect(q.sql).toBe(
      'insert into `campus`.`StudentPhotos` (`STUDENT_ID`, `Photo`, `UpdatedAt`) values (?, ?, ?) ' +
        'on duplicate key update `Photo` = values(`Photo`), `UpdatedAt` = values(`UpdatedAt`)',
    );
    expect(q.bindings).toEqual(['A1', blob, when]);
  });

  it('mssql: MERGE with HOLDLOCK, ended by a semicolon; the image is bound as VARBINARY(MAX)', () => {
    const k = offline('mssql');
    const q = native(dialectByName('mssql').upsertTarget(k, target, row));
    expect(q.sql).toBe(
      'merge into [campus].[StudentPhotos] with (holdlock) as t using (select @p0 as [STUDENT_ID], @p1 as [Photo], @p2 as [UpdatedAt]) as s ' +
        'on t.[STUDENT_ID] = s.[STUDENT_ID] when matched then update set t.[Photo] = s.[Photo], t.[UpdatedAt] = s.[UpdatedAt] ' +
        'when not matched then insert ([STUDENT_ID], [Photo], [UpdatedAt]) values (s.[STUDENT_ID], s.[Photo], s.[UpdatedAt]);',
    );
    expect(q.bindings).toEqual(['A1', blob, when]);
    // What knex's tedious client does with that Buffer: VarBinary, with length 'max' (not a truncating length).
    const params: Array<{ name: string; type: { name: string }; options?: { length?: unknown } }> = [];
    const request = { addParameter: (name: string, type: { name: string }, _v: unknown, options?: { length?: unknown }) => params.push({ name, type, options }) };
    (k.client as unknown as { _setReqInput(r: unknown, i: number, b: unknown): void })._setReqInput(request, 1, Buffer.alloc(6 * 1024 * 1024));
    expect(params).toEqual([{ name: 'p1', type: expect.objectContaining({ name: 'VarBinary' }), options: { length: 'max' } }]);
  });

  it('oracle: MERGE from dual, the image bound as a BLOB (needed over 32 KB)', () => {
    const big = Buffer.alloc(40 * 1024, 7);
    const q = native(dialectByName('oracle').upsertTarget(offline('oracle'), { ...target, table: 'BANINST1.SPBIMAG' }, { ...row, blob: big }));
    expect(q.sql).toBe(
      'merge into "BANINST1"."SPBIMAG" t using (select :1 as "STUDENT_ID", :2 as "Photo", :3 as "UpdatedAt" from dual) s ' +
        'on (t."STUDENT_ID" = s."STUDENT_ID") when matched then update set t."Photo" = s."Photo", t."UpdatedAt" = s."UpdatedAt" ' +
        'when not matched then insert ("STUDENT_ID", "Photo", "UpdatedAt") values (s."STUDENT_ID", s."Photo", s."UpdatedAt")',
    );
    expect(q.bindings[0]).toBe('A1');
    const oracledb = createRequire(import.meta.url)('oracledb') as { DB_TYPE_BLOB: unknown };
    expect(q.bindings[1]).toEqual({ type: oracledb.DB_TYPE_BLOB, val: big });
    expect(q.bindings[2]).toEqual(when);
  });
});

describe('per-student row: create if absent, then lock', () => {
  const cases: Array<[DialectName, string, string]> = [
    ['postgres', 'insert into "job"."cloudcard_student_photo" ("student_key", "updated_at") values ($1, $2) on conflict ("student_key") do nothing',
      'select "student_key", "photo_id", "version", "photo_date" from "job"."cloudcard_student_photo" where "student_key" = $1 for update'],
    ['mysql', 'insert into `job`.`cloudcard_student_photo` (`student_key`, `updated_at`) values (?, ?) on duplicate key update `student_key` = `student_key`',
      'select `student_key`, `photo_id`, `version`, `photo_date` from `job`.`cloudcard_student_photo` where `student_key` = ? for update'],
    ['mssql', 'merge into [job].[cloudcard_student_photo] with (holdlock) as t using (select @p0 as [student_key]) as s on t.[student_key] = s.[student_key] when not matched then insert ([student_key], [updated_at]) values (s.[student_key], @p1);',
      'select [student_key], [photo_id], [version], [photo_date] from [job].[cloudcard_student_photo] with (updlock, rowlock, holdlock) where [student_key] = @p0'],
    ['oracle', 'merge into "job"."cloudcard_student_photo" t using (select :1 as "student_key" from dual) s on (t."student_key" = s."student_key") when not matched then insert ("student_key", "updated_at") values (s."student_key", :2)',
      'select "student_key", "photo_id", "version", "photo_date" from "job"."cloudcard_student_photo" where "student_key" = :1 for update'],
  ];
  it.each(cases)('%s', (name, ensureSql, lockSql) => {
    const k = offline(name);
    const d = dialectByName(name);
    const ensure = native(d.ensureStudentRow(k, 'job.cloudcard_student_photo', 'S1', when));
    expect(ensure.sql).toBe(ensureSql);
    expect(ensure.bindings).toEqual(['S1', when]);
    const lock = native(d.lockStudentRow(k, 'job.cloudcard_student_photo', 'S1'));
    expect(lock.sql).toBe(lockSql);
    expect(lock.bindings).toEqual(['S1']);
  });

  it('sqlite: takes the write lock first, then reads (the transaction is already exclusive)', () => {
    const k = offline('sqlite');
    const d = dialectByName('sqlite');
    expect(native(d.beginWrite!(k, 'cloudcard_lock')).sql).toBe('update `cloudcard_lock` set `name` = `name` where 1 = 0');
    expect(native(d.ensureStudentRow(k, 'cloudcard_student_photo', 'S1', when)).sql).toBe(
      'insert into `cloudcard_student_photo` (`student_key`, `updated_at`) values (?, ?) on conflict (`student_key`) do nothing',
    );
    expect(native(d.lockStudentRow(k, 'cloudcard_student_photo', 'S1')).sql).toBe(
      'select `student_key`, `photo_id`, `version`, `photo_date` from `cloudcard_student_photo` where `student_key` = ?',
    );
  });
});

describe('ledger insert and lookup as the writer issues them', () => {
  it('ledger insert binds every column in order (oracle shown: no RETURNING wrapper)', () => {
    const q = offline('oracle')('job.cloudcard_ledger')
      .insert({ photo_id: 5, version: 2, student_key: 'S1', outcome: 'stored', committed_at: when })
      .toSQL()
      .toNative();
    expect(q.sql).toBe('insert into "job"."cloudcard_ledger" ("committed_at", "outcome", "photo_id", "student_key", "version") values (:1, :2, :3, :4, :5)');
    expect(q.bindings).toEqual([when, 'stored', 5, 'S1', 2]);
  });

  it('the lookup binds :key as a value in every dialect', () => {
    const expected: Record<DialectName, string> = {
      postgres: 'select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = $1',
      mysql: 'select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = ?',
      mssql: 'select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = @p0',
      oracle: 'select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = :1',
      sqlite: 'select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = ?',
    };
    for (const [name, sql] of Object.entries(expected) as Array<[DialectName, string]>) {
      const q = offline(name).raw('select SPRIDEN_PIDM from SPRIDEN where SPRIDEN_ID = :key', { key: "x' or 1=1 --" }).toSQL().toNative();
      expect(q.sql).toBe(sql);
      expect(q.bindings).toEqual(["x' or 1=1 --"]);
    }
  });
});

describe('parameter limits used to chunk batch acknowledgements', () => {
  it.each([
    ['mssql', 2100, 1000],
    ['oracle', 65535, 1000],
    ['sqlite', 32766, 10000],
    ['postgres', 65535, 10000],
    ['mysql', 65535, 10000],
  ] as Array<[DialectName, number, number]>)('%s: %i bindings, %i per IN list', (name, maxBindings, maxInList) => {
    expect(dialectByName(name).maxBindings).toBe(maxBindings);
    expect(dialectByName(name).maxInList).toBe(maxInList);
  });
});
