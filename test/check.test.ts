/**
 * `cloudcard-sync check` against real databases: a mapping that fits passes every check, and each way a
 * mapping can fail to fit gives its own specific message. PostgreSQL and MariaDB run when TEST_PG_URL /
 * TEST_MYSQL_URL are set (each skipped with a printed reason otherwise); SQLite always runs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck, type CheckReport } from '../src/commands/check.js';
import type { MappingInput } from '../src/config/mapping.js';
import { loadSettings } from '../src/config/settings.js';
import { EXIT } from '../src/errors.js';
import { startSimulator } from '../src/simulator/index.js';
import { judgeBlobColumn, judgeKeyColumn, type CheckResult } from '../src/target/check.js';
import { parseMapping } from '../src/config/mapping.js';
import type { ColumnInfo } from '../src/target/introspect.js';
import { openDatabase } from '../src/target/connection.js';
import { migrateLatest } from '../src/target/migrate.js';
import { CLI, runCli } from './support/cli.js';
import { DIALECTS, type AcquiredDatabase } from './support/databases.js';

const dir = mkdtempSync(path.join(tmpdir(), 'cc-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeMapping(target: Partial<MappingInput['target']> & { table: string }, extra: Partial<MappingInput> = {}): string {
  const mapping: MappingInput = {
    studentKey: { from: 'identifier', clean: { trim: true, zeroPad: 9 } },
    ...extra,
    target: { keyColumn: 'STUDENT_ID', blobColumn: 'PHOTO', mode: 'upsert', keyIsUnique: true, columns: { UPDATED_AT: { from: 'now' } }, ...target },
  };
  const file = path.join(dir, `mapping-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(file, JSON.stringify(mapping));
  return file;
}

const check = (report: CheckReport, id: string): CheckResult => {
  const c = report.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check "${id}" in ${JSON.stringify(report.checks.map((x) => x.id))}`);
  return c;
};

for (const dialect of DIALECTS.filter((d) => ['postgres', 'mysql', 'sqlite'].includes(d.name))) {
  describe(`check against ${dialect.name}`, () => {
    let db: AcquiredDatabase | undefined;
    let skip: string | undefined;

    beforeAll(async () => {
      const got = await dialect.acquire();
      if ('skip' in got) return void (skip = got.skip);
      db = got;
      await migrateLatest(db.knex, db.schema);
    });
    afterAll(async () => db?.close());

    const q = (name: string) => (db?.schema ? `${db.schema}.${name}` : name);
    const quote = (name: string) => (dialect.name === 'mysql' ? `\`${name}\`` : `"${name}"`);
    const quoted = (name: string) => q(name).split('.').map(quote).join('.');
    const ddl = () => (db?.schema ? db.knex.schema.withSchema(db.schema) : (db as AcquiredDatabase).knex.schema);
    const blob = (t: Knex.CreateTableBuilder, name: string) => (dialect.name === 'mysql' ? t.specificType(name, 'longblob') : t.binary(name));

    async function table(name: string, build: (t: Knex.CreateTableBuilder) => void): Promise<string> {
      await ddl().dropTableIfExists(name);
      await ddl().createTable(name, build);
      return q(name);
    }

    /** The shape the vendor's downloader writes: key, image, timestamp. */
    const studentTable = (name: string) =>
      table(name, (t) => {
        t.string('STUDENT_ID', 9).primary();
        blob(t, 'PHOTO');
        t.timestamp('UPDATED_AT').nullable();
      });

    const check$ = (file: string, url = db?.url, jobSchema = db?.schema) =>
      runCheck(loadSettings({}, { databaseUrl: url, mapping: file, jobSchema }));

    it('passes a mapping that fits, lookup query included, and leaves no trace', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await studentTable('students_ok');
      const lookup = { sql: `select ${quote('STUDENT_ID')} from ${quoted('students_ok')} where ${quote('STUDENT_ID')} = :key` };
      const report = await check$(writeMapping({ table: t }, { studentKey: { clean: { zeroPad: 9 }, lookup } }));
      const notPassed = report.checks.filter((c) => c.status !== 'pass' && !(c.id === 'packet' && c.status === 'warn'));
      expect(notPassed).toEqual([]);
      expect(report.exitCode).toBe(EXIT.OK);
      expect(check(report, 'write').message).toMatch(/rolled back/);
      expect(check(report, 'database').message).toMatch(/connected to/);
      // The write check rolled back: no sentinel row anywhere.
      expect(await db.knex(t).count({ n: '*' })).toEqual([{ n: expect.anything() }]);
      expect(Number((await db.knex(t).count({ n: '*' }))[0]?.n)).toBe(0);
      expect(Number((await db.knex(q('cloudcard_ledger')).count({ n: '*' }))[0]?.n)).toBe(0);
      expect(Number((await db.knex(q('cloudcard_student_photo')).count({ n: '*' }))[0]?.n)).toBe(0);
    });

    it('update mode: an UPDATE matching nothing and a ledger insert, other NOT NULL columns not required', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await table('students_upd', (b) => {
        b.string('STUDENT_ID', 9).primary();
        b.string('NAME', 50).notNullable();
        blob(b, 'PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
      const report = await check$(writeMapping({ table: t, mode: 'update' }));
      expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
      expect(check(report, 'write').message).toMatch(/UPDATE/);
    });

    it('names the missing table and the schemas searched', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const report = await check$(writeMapping({ table: q('no_such_table') }));
      expect(check(report, 'table')).toMatchObject({ status: 'fail' });
      expect(check(report, 'table').message).toContain(`target.table ${q('no_such_table')} not found (searched schema ${db.schema ?? 'main'})`);
      expect(check(report, 'columns').status).toBe('skip');
      expect(report.exitCode).toBe(EXIT.CONFIG);
    });

    it('suggests the name that differs only in letter case where the database cares', async (ctx) => {
      if (!db) return ctx.skip(skip);
      await studentTable('CASED_STUDENTS');
      const report = await check$(writeMapping({ table: q('cased_students') }));
      if (dialect.name === 'sqlite') {
        expect(check(report, 'table').status).toBe('pass'); // SQLite names are case-insensitive
      } else {
        expect(check(report, 'table').status).toBe('fail');
        expect(check(report, 'table').message).toContain('there is "CASED_STUDENTS", which differs only in letter case');
        expect(check(report, 'table').message).toContain(`write target.table: ${q('CASED_STUDENTS')}`);
      }
    });

    it('names a missing column and the setting that names it', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await studentTable('students_cols');
      const report = await check$(writeMapping({ table: t, blobColumn: 'PICTURE', columns: { UPDATED_AT: { from: 'now' }, SOURCE: { value: 'x' } } }));
      const c = check(report, 'columns');
      expect(c.status).toBe('fail');
      expect(c.message).toContain('target.blobColumn: column "PICTURE" not found');
      expect(c.message).toContain('target.columns.SOURCE: column "SOURCE" not found');
      expect(c.message).toContain('STUDENT_ID, PHOTO, UPDATED_AT');
      expect(check(report, 'blobType').status).toBe('skip');
    });

    it('fails a blob column too small for images.maxBytes', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await table('students_small_blob', (b) => {
        b.string('STUDENT_ID', 9).primary();
        if (dialect.name === 'mysql') b.specificType('PHOTO', 'blob');
        else b.text('PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
      const c = check(await check$(writeMapping({ table: t })), 'blobType');
      if (dialect.name === 'mysql') {
        expect(c.status).toBe('fail');
        expect(c.message).toMatch(/PHOTO is blob: holds at most 64 KB, less than images\.maxBytes \(10 MB\)\. Use MEDIUMBLOB \(16 MB\) or LONGBLOB: ALTER TABLE \S+ MODIFY PHOTO MEDIUMBLOB/);
      } else if (dialect.name === 'postgres') {
        expect(c.status).toBe('fail');
        expect(c.message).toContain('PHOTO is text: not a binary type. Images need bytea');
      } else {
        expect(c.status).toBe('warn'); // SQLite stores the bytes anyway
        expect(c.message).toContain('declare it BLOB');
      }
    });

    it('fails a key column whose type does not fit keyType, and one too short for zeroPad', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await studentTable('students_keytype');
      const asInteger = check(await check$(writeMapping({ table: t, keyType: 'integer' })), 'keyType');
      expect(asInteger.status).toBe('fail');
      expect(asInteger.message).toContain('but target.keyType is integer: set keyType: string');

      const numeric = await table('students_numkey', (b) => {
        b.integer('STUDENT_ID').primary();
        blob(b, 'PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
      const asString = check(await check$(writeMapping({ table: numeric })), 'keyType');
      expect(asString.status).toBe('fail');
      expect(asString.message).toContain('but target.keyType is string: set keyType: integer');

      if (dialect.name !== 'sqlite') {
        const short = await table('students_short', (b) => {
          b.string('STUDENT_ID', 6).primary();
          blob(b, 'PHOTO');
          b.timestamp('UPDATED_AT').nullable();
        });
        const tooShort = check(await check$(writeMapping({ table: short })), 'keyType');
        expect(tooShort.status).toBe('fail');
        expect(tooShort.message).toContain('shorter than the 9 characters studentKey.clean.zeroPad makes every key');
      }
    });

    it('fails keyIsUnique without a unique constraint, notes the native upsert when one exists', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await table('students_nounique', (b) => {
        b.string('STUDENT_ID', 9).notNullable().index();
        blob(b, 'PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
      const report = await check$(writeMapping({ table: t }));
      expect(check(report, 'keyUnique').status).toBe('fail');
      expect(check(report, 'keyUnique').message).toContain('has no primary key or unique constraint of its own');
      expect(check(report, 'keyUnique').message).toContain('set keyIsUnique: false');
      expect(report.exitCode).toBe(EXIT.CONFIG);

      const fine = await check$(writeMapping({ table: t, keyIsUnique: false }));
      expect(check(fine, 'keyUnique').status).toBe('pass');
      expect(check(fine, 'write').status).toBe('pass'); // update-then-insert path

      const unique = await studentTable('students_unique');
      const note = check(await check$(writeMapping({ table: unique, keyIsUnique: false })), 'keyUnique');
      expect(note).toMatchObject({ status: 'warn' });
      expect(note.message).toContain('set target.keyIsUnique: true');
    });

    it('fails NOT NULL columns without default that the mapping leaves empty', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await table('students_notnull', (b) => {
        b.increments('ROW_ID'); // filled by the database: not reported
        b.string('STUDENT_ID', 9).notNullable().unique();
        b.string('CAMPUS', 10).notNullable();
        b.string('STATUS', 1).notNullable().defaultTo('A');
        blob(b, 'PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
      const report = await check$(writeMapping({ table: t }));
      const c = check(report, 'requiredColumns');
      expect(c.status).toBe('fail');
      expect(c.message).toMatch(/^CAMPUS is NOT NULL without a default and the mapping gives no value/);
      expect(c.message).toContain('CAMPUS: { value: ... }');
      // The test write hits the same wall, and says so.
      expect(check(report, 'write').status).toBe('fail');

      const filled = await check$(writeMapping({ table: t, columns: { UPDATED_AT: { from: 'now' }, CAMPUS: { value: 'MAIN' } } }));
      expect(check(filled, 'requiredColumns').status).toBe('pass');
      expect(check(filled, 'write').status).toBe('pass');
    });

    it('fails a lookup query that does not run, or returns more than one column', async (ctx) => {
      if (!db) return ctx.skip(skip);
      const t = await studentTable('students_lookup');
      const broken = await check$(writeMapping({ table: t }, { studentKey: { lookup: { sql: `select ${quote('NO_COLUMN')} from ${quoted('students_lookup')} where ${quote('STUDENT_ID')} = :key` } } }));
      expect(check(broken, 'lookup').status).toBe('fail');
      expect(check(broken, 'lookup').message).toMatch(/^studentKey\.lookup\.sql failed: .*NO_COLUMN/i);
      expect(check(broken, 'lookup').message).not.toContain('select '); // the database's words, not knex's echo

      const twoColumns = await check$(writeMapping({ table: t }, { studentKey: { lookup: { sql: `select ${quote('STUDENT_ID')}, ${quote('PHOTO')} from ${quoted('students_lookup')} where ${quote('STUDENT_ID')} = :key` } } }));
      expect(check(twoColumns, 'lookup')).toMatchObject({ status: 'fail', message: expect.stringContaining('returns 2 columns; it must return exactly one') });
    });

    it('fails when the job tables are not migrated, and skips the write check', async (ctx) => {
      if (!db) return ctx.skip(skip);
      let report: CheckReport;
      if (dialect.name === 'sqlite') {
        // A fresh SQLite file has no job tables; it needs its own target table.
        const file = path.join(dir, `fresh-${randomBytes(4).toString('hex')}.sqlite`);
        const fresh = openDatabase(`sqlite:${file}`);
        try {
          await fresh.schema.createTable('students', (b) => {
            b.string('STUDENT_ID', 9).primary();
            b.binary('PHOTO');
            b.timestamp('UPDATED_AT').nullable();
          });
        } finally {
          await fresh.destroy();
        }
        report = await check$(writeMapping({ table: 'students' }), `sqlite:${file}`, undefined);
      } else {
        const t = await studentTable('students_nojob');
        report = await check$(writeMapping({ table: t }), db.url, `${db.schema}_nojob`);
      }
      expect(check(report, 'jobTables').status).toBe('fail');
      expect(check(report, 'jobTables').message).toContain('run `cloudcard-sync migrate`');
      expect(check(report, 'write').status).toBe('skip');
      expect(report.exitCode).toBe(EXIT.CONFIG);
    });

    if (dialect.name === 'mysql') {
      it('warns when images.maxBytes is not below max_allowed_packet', async (ctx) => {
        if (!db) return ctx.skip(skip);
        const t = await studentTable('students_packet');
        const report = await check$(writeMapping({ table: t }, { images: { maxBytes: 100 * 1024 * 1024 } }));
        expect(check(report, 'packet')).toMatchObject({ status: 'warn', message: expect.stringContaining('max_allowed_packet') });
      });
    }

    if (dialect.name === 'postgres') {
      it('reports a role that may read but not write as a permission problem', async (ctx) => {
        if (!db) return ctx.skip(skip);
        const t = await studentTable('students_ro');
        const role = `cc_ro_${randomBytes(4).toString('hex')}`;
        await db.knex.raw('create role ?? login', [role]);
        try {
          await db.knex.raw('grant usage on schema ?? to ??', [db.schema!, role]);
          await db.knex.raw('grant select on all tables in schema ?? to ??', [db.schema!, role]);
          const url = new URL(db.url);
          url.username = role;
          url.password = '';
          const report = await check$(writeMapping({ table: t }), url.toString());
          expect(check(report, 'table').status).toBe('pass');
          expect(check(report, 'jobTables').status).toBe('pass');
          const w = check(report, 'write');
          expect(w.status).toBe('fail');
          expect(w.message).toMatch(/^the database account may not write: permission denied for table/);
          expect(w.message).toContain(`Grant it SELECT, INSERT, UPDATE on ${t}`);
        } finally {
          await db.knex.raw('drop owned by ??', [role]);
          await db.knex.raw('drop role ??', [role]);
        }
      });
    }
  });
}

describe('judging column types for every dialect (no database needed)', () => {
  const col = (type: string, length: number | null = null, scale: number | null = null): ColumnInfo => ({
    name: 'C', type, length, scale, unsigned: false, nullable: true, filledByDatabase: false,
  });
  const MB = 1024 * 1024;
  const blob = (d: Parameters<typeof judgeBlobColumn>[0], c: ColumnInfo, max = 10 * MB) => judgeBlobColumn(d, c, max, 'T').status;

  it('blob columns', () => {
    expect(blob('postgres', col('bytea'))).toBe('pass');
    expect(blob('postgres', col('text'))).toBe('fail');
    expect(blob('mysql', col('blob'))).toBe('fail');
    expect(blob('mysql', col('mediumblob'))).toBe('pass');
    expect(blob('mysql', col('mediumblob'), 20 * MB)).toBe('fail');
    expect(blob('mysql', col('longblob'), 100 * MB)).toBe('pass');
    expect(blob('mssql', col('varbinary', -1))).toBe('pass');
    expect(blob('mssql', col('image'))).toBe('pass');
    expect(judgeBlobColumn('mssql', col('varbinary', 8000), 10 * MB, 'T').message).toBe(
      'C is varbinary(8000): holds at most 7.8 KB, less than images.maxBytes (10 MB). Use varbinary(max): ALTER TABLE T ALTER COLUMN C varbinary(max)',
    );
    expect(blob('mssql', col('nvarchar', -1))).toBe('fail');
    expect(blob('oracle', col('blob'))).toBe('pass');
    expect(judgeBlobColumn('oracle', col('raw', 2000), 10 * MB).message).toContain('RAW holds at most 2 KB');
    expect(blob('oracle', col('clob'))).toBe('fail');
    expect(blob('sqlite', col('blob'))).toBe('pass');
    expect(blob('sqlite', col(''))).toBe('pass');
    expect(blob('sqlite', col('text'))).toBe('warn');
  });

  it('key columns', () => {
    const mapping = (keyType: 'string' | 'integer', zeroPad?: number) =>
      parseMapping({ studentKey: { clean: zeroPad ? { zeroPad } : {} }, target: { table: 'T', keyColumn: 'C', blobColumn: 'P', keyType } });
    expect(judgeKeyColumn('oracle', col('number', null, 0), mapping('integer')).status).toBe('pass');
    expect(judgeKeyColumn('oracle', col('varchar2', 9), mapping('integer')).status).toBe('fail');
    expect(judgeKeyColumn('oracle', col('varchar2', 9), mapping('string', 9)).status).toBe('pass');
    expect(judgeKeyColumn('mssql', col('nvarchar', 6), mapping('string', 9)).message).toContain('shorter than the 9 characters');
    expect(judgeKeyColumn('mssql', col('int', null, 0), mapping('string')).status).toBe('fail');
    expect(judgeKeyColumn('mssql', col('bigint', null, 0), mapping('integer')).status).toBe('pass');
    expect(judgeKeyColumn('postgres', col('numeric', null, 2), mapping('integer')).status).toBe('warn');
    expect(judgeKeyColumn('sqlite', col('varchar'), mapping('string', 9)).status).toBe('pass'); // SQLite does not enforce lengths
  });
});

describe('check --cloudcard', () => {
  it('logs in and lists a page with a good token, fails clearly with a bad one', async () => {
    const sim = await startSimulator({ photoCount: 2 });
    const file = path.join(dir, 'cc.sqlite');
    try {
      const mapping = writeMapping({ table: 'students' });
      const good = await runCheck(loadSettings({}, { databaseUrl: `sqlite:${file}`, mapping, baseUrl: sim.baseUrl, accessToken: sim.accessToken }), { cloudcard: true });
      expect(good.checks.find((c) => c.id === 'cloudcard')).toMatchObject({ status: 'pass', message: expect.stringContaining('at least one waiting') });
      const bad = await runCheck(loadSettings({}, { databaseUrl: `sqlite:${file}`, mapping, baseUrl: sim.baseUrl, accessToken: 'wrong-token-value' }), { cloudcard: true });
      const c = bad.checks.find((x) => x.id === 'cloudcard');
      expect(c?.status).toBe('fail');
      expect(c?.message).not.toContain('wrong-token-value');
      const none = await runCheck(loadSettings({}, { databaseUrl: `sqlite:${file}`, mapping, baseUrl: sim.baseUrl }), { cloudcard: true });
      expect(none.checks.find((x) => x.id === 'cloudcard')?.message).toContain('CLOUDCARD_ACCESS_TOKEN is not set');
    } finally {
      await sim.close();
    }
  });
});

describe('cloudcard-sync check (the built CLI)', () => {
  const built = existsSync(CLI);
  it.skipIf(!built)('prints a checklist and exits 0 / 2 / 4, or JSON', async () => {
    const file = path.join(dir, 'cli.sqlite');
    const knex = openDatabase(`sqlite:${file}`);
    try {
      await migrateLatest(knex);
      await knex.schema.createTable('students', (b) => {
        b.string('STUDENT_ID', 9).primary();
        b.binary('PHOTO');
        b.timestamp('UPDATED_AT').nullable();
      });
    } finally {
      await knex.destroy();
    }
    // No CLOUDCARD_ACCESS_TOKEN in the environment: check must not need it.
    const env = { DATABASE_URL: `sqlite:${file}` };
    const ok = await runCli(['check', '--mapping', writeMapping({ table: 'students' })], env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/✓ target table +students found as main\.students/);
    expect(ok.stdout).toMatch(/✓ write permission/);
    expect(ok.stdout).toContain('All checks passed');

    const bad = await runCli(['check', '--mapping', writeMapping({ table: 'students', blobColumn: 'PICTURE' })], env);
    expect(bad.code).toBe(EXIT.CONFIG);
    expect(bad.stdout).toMatch(/✗ target columns +target\.blobColumn: column "PICTURE" not found/);
    expect(bad.stdout).toMatch(/check(s)? failed/);

    const json = await runCli(['check', '--json', '--mapping', writeMapping({ table: 'students', keyIsUnique: false })], env);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as CheckReport;
    expect(report.checks.find((c) => c.id === 'keyUnique')?.status).toBe('warn');

    const down = await runCli(['check', '--mapping', writeMapping({ table: 'students' }), '--database-url', 'postgres://nobody:secret-pw@127.0.0.1:1/none'], {});
    expect(down.code).toBe(EXIT.DATABASE_UNREACHABLE);
    expect(down.stdout).toMatch(/✗ database +Cannot connect to the database at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/);
    expect(down.stdout).not.toContain('secret-pw');

    const badScheme = await runCli(['check', '--mapping', writeMapping({ table: 'students' }), '--database-url', 'db2://host/x'], {});
    expect(badScheme.code).toBe(EXIT.CONFIG);
    expect(badScheme.stdout).toMatch(/✗ database +DATABASE_URL has an unsupported scheme/);

    const badFile = await runCli(['check', '--mapping', path.join(dir, 'missing.yaml')], env);
    expect(badFile.code).toBe(EXIT.CONFIG);
    expect(badFile.stdout).toMatch(/✗ mapping file +Cannot read mapping file .*missing\.yaml: ENOENT/);
    expect(badFile.stdout).toMatch(/✓ job tables/);
  });
  if (!built) console.log(`CLI test skipped: ${CLI} not built (run \`npx tsc -p .\` or \`npm test\`)`);
});
