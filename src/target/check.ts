/**
 * The database half of `cloudcard-sync check`: does the mapping fit the live database? Each check returns a
 * structured result whose message names the table, column or setting and says what to do, so a person setting
 * the job up fixes the mapping before the first run rather than reading a failed photo's error.
 *
 * Nothing here leaves a trace: catalog queries only read, and the lookup and write checks run inside
 * transactions that are always rolled back.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Photo } from '../cloudcard/types.js';
import type { Mapping, TargetMapping } from '../config/mapping.js';
import { resolveColumns } from '../mapping/column-values.js';
import { dialectName, type DialectName } from './connection.js';
import { dialectFor } from './dialects/index.js';
import {
  describeColumns,
  findTable,
  identifierCase,
  maxAllowedPacket,
  uniqueKeys,
  type ColumnInfo,
  type TableRef,
} from './introspect.js';
import { JOB_TABLES, checkJobSchema, jobTable } from './job-tables.js';
import { MIGRATIONS_TABLE, migrationStatus } from './migrate.js';
import type { StoreRequest } from './types.js';
import { PhotoWriter } from './writer.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** Stable identifier, for --json consumers and tests. */
  id: string;
  /** Short label for the checklist. */
  title: string;
  status: CheckStatus;
  message: string;
}

export const CHECK_TITLES = {
  mapping: 'mapping file',
  database: 'database',
  table: 'target table',
  columns: 'target columns',
  blobType: 'blob column type',
  packet: 'max_allowed_packet',
  keyType: 'key column type',
  keyUnique: 'key uniqueness',
  requiredColumns: 'NOT NULL columns',
  lookup: 'lookup query',
  jobTables: 'job tables',
  write: 'write permission',
  cloudcard: 'CloudCard',
} as const;
export type CheckId = keyof typeof CHECK_TITLES;

export function result(id: CheckId, status: CheckStatus, message: string): CheckResult {
  return { id, title: CHECK_TITLES[id], status, message };
}

/** The key used by the lookup and write checks: obviously not a student, and never committed. */
export const SENTINEL_KEY = '__cloudcard_sync_check__';
/** CloudCard photo ids are positive, so a negative one cannot collide with a real ledger row. */
const SENTINEL_PHOTO_ID = -424242;

const PRODUCT: Record<DialectName, string> = {
  postgres: 'PostgreSQL',
  mysql: 'MySQL/MariaDB',
  mssql: 'SQL Server',
  oracle: 'Oracle',
  sqlite: 'SQLite',
};

export interface TargetCheckOptions {
  jobSchema?: string | undefined;
}

/** Runs every database check for the mapping, in checklist order. Never throws for a check that fails. */
export async function checkTarget(knex: Knex, mapping: Mapping, opts: TargetCheckOptions = {}): Promise<CheckResult[]> {
  watchFailedStatements(knex);
  const out: CheckResult[] = [];
  const target = mapping.target;
  const dialect = dialectName(knex);

  const table = await guard('table', () => checkTable(knex, target.table));
  out.push(table.result);
  let keyColumn: ColumnInfo | undefined;
  if (table.ref) {
    const ref = table.ref;
    const shape = await guard('columns', async () => {
      const columns = await describeColumns(knex, ref);
      return { ...checkColumns(columns, target, ref, (await identifierCase(knex)).columns), columns };
    });
    out.push(shape.result);
    keyColumn = shape.key;
    out.push(shape.blob ? judgeBlobColumn(dialect, shape.blob, mapping.images.maxBytes, target.table) : skipped('blobType', 'the blob column was not found'));
    if (dialect === 'mysql') out.push((await guard('packet', async () => ({ result: judgePacket(await maxAllowedPacket(knex), mapping.images.maxBytes) }))).result);
    out.push(shape.key ? judgeKeyColumn(dialect, shape.key, mapping) : skipped('keyType', 'the key column was not found'));
    if (shape.key) {
      const key = shape.key;
      out.push((await guard('keyUnique', async () => ({ result: judgeKeyUniqueness(target, key, await uniqueKeys(knex, ref)) }))).result);
    } else {
      out.push(skipped('keyUnique', 'the key column was not found'));
    }
    out.push(shape.columns ? judgeRequiredColumns(shape.columns, target) : skipped('requiredColumns', 'the columns could not be read'));
  } else {
    for (const id of ['columns', 'blobType', 'keyType', 'keyUnique', 'requiredColumns'] as const) out.push(skipped(id, 'the target table was not found'));
  }

  out.push(await checkLookup(knex, mapping));
  const jobTables = await checkJobTables(knex, opts.jobSchema);
  out.push(jobTables);
  if (!table.ref) out.push(skipped('write', 'the target table was not found'));
  else if (jobTables.status === 'fail') out.push(skipped('write', "the job's own tables are not ready"));
  else out.push(await checkWriteAccess(knex, mapping, opts.jobSchema, keyColumn));
  return out;
}

const skipped = (id: CheckId, why: string): CheckResult => result(id, 'skip', `not checked: ${why}`);

/** Runs a check whose own code may hit an unexpected database error, turning that into a failed result. */
async function guard<T extends { result: CheckResult }>(id: CheckId, fn: () => Promise<T>): Promise<Partial<T> & { result: CheckResult }> {
  try {
    return await fn();
  } catch (err) {
    return { result: result(id, 'fail', `could not be checked: ${databaseMessage(err)}`) } as Partial<T> & { result: CheckResult };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Table and columns

export async function checkTable(knex: Knex, qualified: string): Promise<{ result: CheckResult; ref?: TableRef }> {
  const search = await findTable(knex, qualified);
  const where = `schema${search.searched.length === 1 ? '' : 's'} ${search.searched.join(', ')}`;
  if (search.found) {
    return { result: result('table', 'pass', `${qualified} found as ${search.found.schema}.${search.found.name}`), ref: search.found };
  }
  const s = search.suggestion;
  const product = PRODUCT[dialectName(knex)];
  const name = qualified.split('.').pop() as string;
  let message = `target.table ${qualified} not found (searched ${where})`;
  if (s && s.name !== name && s.name.toLowerCase() === name.toLowerCase() && search.searched.includes(s.schema)) {
    message += `; there is "${s.name}", which differs only in letter case. ${product} matches the mapping's names exactly, so write target.table: ${qualified.includes('.') ? `${s.schema}.` : ''}${s.name}`;
  } else if (s) {
    message += `; a table "${s.name}" exists in schema ${s.schema}: write target.table: ${s.schema}.${s.name}`;
  } else {
    message += '. Create the table, correct target.table, or qualify it as schema.table';
  }
  return { result: result('table', 'fail', message) };
}

interface ColumnMatch {
  column?: ColumnInfo;
  suggestion?: string;
}

function matchColumn(columns: ColumnInfo[], wanted: string, caseSensitive: boolean): ColumnMatch {
  const exact = columns.find((c) => c.name === wanted);
  if (exact) return { column: exact };
  const folded = columns.find((c) => c.name.toLowerCase() === wanted.toLowerCase());
  if (folded && !caseSensitive) return { column: folded };
  return folded ? { suggestion: folded.name } : {};
}

export function checkColumns(
  columns: ColumnInfo[],
  target: TargetMapping,
  table: TableRef,
  caseSensitive: boolean,
): { result: CheckResult; key?: ColumnInfo; blob?: ColumnInfo } {
  const wanted: Array<[setting: string, name: string]> = [
    ['target.keyColumn', target.keyColumn],
    ['target.blobColumn', target.blobColumn],
    ...Object.keys(target.columns).map((c): [string, string] => [`target.columns.${c}`, c]),
  ];
  const problems: string[] = [];
  const found = new Map<string, ColumnInfo>();
  for (const [setting, name] of wanted) {
    const m = matchColumn(columns, name, caseSensitive);
    if (m.column) found.set(setting, m.column);
    else if (m.suggestion) problems.push(`${setting}: column "${name}" not found, but "${m.suggestion}" is (names must match in letter case here): write ${m.suggestion}`);
    else problems.push(`${setting}: column "${name}" not found in ${table.schema}.${table.name}`);
  }
  const key = found.get('target.keyColumn');
  const blob = found.get('target.blobColumn');
  const matched = { ...(key ? { key } : {}), ...(blob ? { blob } : {}) };
  if (problems.length) {
    const listing = columns.slice(0, 30).map((c) => c.name).join(', ') + (columns.length > 30 ? ', ...' : '');
    return { result: result('columns', 'fail', `${problems.join('; ')}. The table's columns are: ${listing}`), ...matched };
  }
  return { result: result('columns', 'pass', `key ${key?.name}, blob ${blob?.name}${wanted.length > 2 ? ` and ${wanted.length - 2} extra column(s)` : ''} exist`), ...matched };
}

/** `varchar(9)`, `varbinary(max)`, `bytea`: the type as a DBA would write it. */
export function describeType(c: ColumnInfo): string {
  if (c.length === -1 && ['varbinary', 'varchar', 'nvarchar'].includes(c.type)) return `${c.type}(max)`;
  if (c.length !== null && c.length > 0) return `${c.type}(${c.length})`;
  return c.type;
}

const MB = 1024 * 1024;
const size = (n: number): string => (n >= MB ? `${+(n / MB).toFixed(1)} MB` : `${+(n / 1024).toFixed(1)} KB`);

/** Whether the blob column can hold an image of images.maxBytes bytes, and how to make it able to. */
export function judgeBlobColumn(dialect: DialectName, c: ColumnInfo, maxBytes: number, table = '...'): CheckResult {
  const name = `${c.name} is ${describeType(c)}`;
  const limit = `images.maxBytes (${size(maxBytes)})`;
  const ok = (extra = '') => result('blobType', 'pass', `${name}${extra}, large enough for ${limit}`);
  const fail = (why: string) => result('blobType', 'fail', `${name}: ${why}`);
  switch (dialect) {
    case 'postgres':
      if (c.type === 'bytea') return ok();
      if (c.type === 'oid') return fail('large objects (oid) are not supported; the job writes bytea. ALTER the column to bytea');
      return fail(`not a binary type. Images need bytea: ALTER TABLE ${table} ALTER COLUMN ${c.name} TYPE bytea`);
    case 'mysql': {
      const capacity: Record<string, number> = { tinyblob: 255, blob: 65_535, mediumblob: 16 * MB - 1, longblob: 4 * 1024 * MB - 1 };
      const cap = capacity[c.type] ?? (['varbinary', 'binary'].includes(c.type) ? (c.length ?? 0) : undefined);
      if (cap === undefined) return fail(`not a binary type. Use MEDIUMBLOB (up to 16 MB) or LONGBLOB: ALTER TABLE ${table} MODIFY ${c.name} LONGBLOB`);
      if (cap < maxBytes) {
        return fail(`holds at most ${size(cap)}, less than ${limit}. Use MEDIUMBLOB (16 MB) or LONGBLOB: ALTER TABLE ${table} MODIFY ${c.name} ${maxBytes < 16 * MB ? 'MEDIUMBLOB' : 'LONGBLOB'}`);
      }
      return ok();
    }
    case 'mssql':
      if (c.type === 'image') return ok(' (deprecated; varbinary(max) is the modern equivalent)');
      if (c.type === 'varbinary' || c.type === 'binary') {
        if (c.length === -1) return ok();
        return fail(`holds at most ${size(c.length ?? 0)}, less than ${limit}. Use varbinary(max): ALTER TABLE ${table} ALTER COLUMN ${c.name} varbinary(max)`);
      }
      return fail(`not a binary type. Use varbinary(max): ALTER TABLE ${table} ALTER COLUMN ${c.name} varbinary(max)`);
    case 'oracle':
      if (c.type === 'blob') return ok();
      if (c.type === 'raw') return fail(`RAW holds at most ${size(c.length ?? 2000)}, far less than ${limit}. Use a BLOB column`);
      if (c.type === 'long raw') return result('blobType', 'warn', `${name}: LONG RAW is deprecated and awkward to bind; a BLOB column is recommended`);
      return fail(`not a binary type. Use a BLOB column`);
    case 'sqlite':
      // SQLite stores a bound buffer as a BLOB whatever the declared type; only the declaration misleads.
      if (c.type === '' || c.type.includes('blob')) return ok(c.type === '' ? ' (no declared type: stores anything)' : '');
      return result('blobType', 'warn', `${name}: SQLite will still store the image bytes, but tools reading this table may expect ${c.type}; declare it BLOB`);
  }
}

/** MySQL/MariaDB send the whole INSERT, image included, in one packet. */
export function judgePacket(packet: number | undefined, maxBytes: number): CheckResult {
  if (packet === undefined) return result('packet', 'skip', 'not MySQL/MariaDB');
  // The statement carries the image plus the other columns and the SQL text: leave room for them.
  if (maxBytes + 64 * 1024 > packet) {
    return result('packet', 'warn', `the server's max_allowed_packet (${size(packet)}) is not larger than images.maxBytes (${size(maxBytes)}): a photo near that size would be refused. Raise max_allowed_packet (server setting) or lower images.maxBytes`);
  }
  return result('packet', 'pass', `max_allowed_packet ${size(packet)} exceeds images.maxBytes (${size(maxBytes)})`);
}

type TypeClass = 'integer' | 'decimal' | 'string' | 'other';

function typeClass(dialect: DialectName, c: ColumnInfo): TypeClass {
  const t = c.type;
  if (dialect === 'sqlite') {
    // SQLite's affinity rules, in their documented order.
    if (t.includes('int')) return 'integer';
    if (/char|clob|text/.test(t)) return 'string';
    if (t === '' || t.includes('blob')) return 'other';
    return 'decimal';
  }
  if (/^(int[248]?|integer|smallint|bigint|tinyint|mediumint|serial|bigserial)$/.test(t)) return 'integer';
  if (/^(numeric|decimal|number)$/.test(t)) return c.scale === 0 ? 'integer' : 'decimal';
  if (/^(float[48]?|real|double|double precision|binary_float|binary_double|money)$/.test(t)) return 'decimal';
  if (/char|text|^string$|^clob$|^nclob$|^citext$/.test(t)) return 'string';
  return 'other';
}

/** Whether the key column fits target.keyType, and a zero-padded key fits its length. */
export function judgeKeyColumn(dialect: DialectName, c: ColumnInfo, mapping: Mapping): CheckResult {
  const { keyType } = mapping.target;
  const cls = typeClass(dialect, c);
  const name = `${c.name} is ${describeType(c)}`;
  if (keyType === 'integer') {
    if (cls === 'integer') return result('keyType', 'pass', `${name}, fits keyType: integer`);
    if (cls === 'string') return result('keyType', 'fail', `${name}, a text column, but target.keyType is integer: set keyType: string (keys are then bound as text, zero padding kept)`);
    if (cls === 'decimal') return result('keyType', 'warn', `${name}, which allows fractions; keyType: integer binds whole numbers, which is fine if the keys are whole`);
    return result('keyType', 'fail', `${name}, which cannot hold a student key for keyType: integer; key the table by an integer or text column`);
  }
  if (cls === 'integer' || cls === 'decimal') {
    return result('keyType', 'fail', `${name}, a number column, but target.keyType is string: set keyType: integer (keys are then bound as numbers${mapping.studentKey.clean.zeroPad ? '; zero padding has no effect on numbers' : ''})`);
  }
  if (cls === 'other') return result('keyType', 'warn', `${name}; keys are bound as text (keyType: string), check the database converts them as you expect`);
  const pad = mapping.studentKey.clean.zeroPad;
  if (pad !== undefined && c.length !== null && c.length > 0 && c.length < pad) {
    return result('keyType', 'fail', `${name}, shorter than the ${pad} characters studentKey.clean.zeroPad makes every key: widen the column or lower zeroPad`);
  }
  return result('keyType', 'pass', `${name}, fits keyType: string${pad !== undefined && c.length !== null && c.length > 0 ? ` and zero-padded keys of ${pad} characters` : ''}`);
}

/** keyIsUnique picks the native upsert, which needs a unique key on exactly the key column. */
export function judgeKeyUniqueness(target: TargetMapping, key: ColumnInfo, keys: string[][]): CheckResult {
  const unique = keys.some((cols) => cols.length === 1 && cols[0] === key.name);
  const mode = target.mode;
  if (mode !== 'upsert') {
    return result('keyUnique', 'pass', `${key.name} is ${unique ? '' : 'not '}unique; ${mode} mode does not use keyIsUnique`);
  }
  if (target.keyIsUnique && !unique) {
    return result('keyUnique', 'fail', `target.keyIsUnique is true but ${key.name} has no primary key or unique constraint of its own, so the database's upsert cannot be used: set keyIsUnique: false (the job then updates or inserts under its own per-student lock), or add the constraint`);
  }
  if (!target.keyIsUnique && unique) {
    return result('keyUnique', 'warn', `${key.name} has a primary key or unique constraint: set target.keyIsUnique: true to use the database's native upsert (one statement per photo)`);
  }
  return result('keyUnique', 'pass', unique ? `${key.name} is unique: the native upsert is used` : `${key.name} is not unique and keyIsUnique is false: update-then-insert under the job's per-student lock`);
}

/** Inserting a new row (upsert and insert modes) fails if a NOT NULL column without a default is left out. */
export function judgeRequiredColumns(columns: ColumnInfo[], target: TargetMapping): CheckResult {
  if (target.mode === 'update') return result('requiredColumns', 'pass', 'update mode never inserts rows, so other NOT NULL columns need no value');
  const filled = new Set([target.keyColumn, target.blobColumn, ...Object.keys(target.columns)].map((c) => c.toLowerCase()));
  const missing = columns.filter((c) => !c.nullable && !c.filledByDatabase && !filled.has(c.name.toLowerCase())).map((c) => c.name);
  if (missing.length) {
    return result(
      'requiredColumns',
      'fail',
      `${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} NOT NULL without a default and the mapping gives no value, so inserting a new student's row in ${target.mode} mode would fail. ` +
        `Add ${missing.length === 1 ? 'it' : 'them'} to target.columns (e.g. ${missing[0]}: { value: ... }), give ${missing.length === 1 ? 'it' : 'them'} a DEFAULT, or use mode: update`,
    );
  }
  return result('requiredColumns', 'pass', 'every NOT NULL column without a default gets a value');
}

// ---------------------------------------------------------------------------------------------------------
// Lookup query, job tables, write permission

/** Runs the lookup query with a key no student has, in a transaction that is rolled back. */
export async function checkLookup(knex: Knex, mapping: Mapping): Promise<CheckResult> {
  const sql = mapping.studentKey.lookup?.sql;
  if (!sql) return result('lookup', 'skip', 'no studentKey.lookup: the cleaned CloudCard value is the key');
  // A numeric key column compared with text fails on some databases, so a digits-only key is the second try.
  let firstError: unknown;
  for (const key of [SENTINEL_KEY, '0']) {
    try {
      const outcome = await inRollback(knex, async (trx) => trx.raw(sql, { key }));
      const count = await lookupColumnCount(knex, sql, outcome);
      if (count !== undefined && count !== 1) {
        return result('lookup', 'fail', `studentKey.lookup.sql returns ${count} columns; it must return exactly one: the student key`);
      }
      return result('lookup', 'pass', `studentKey.lookup.sql runs${count === undefined ? ' (its column count shows only when a row matches)' : ' and returns one column'}`);
    } catch (err) {
      firstError ??= err;
    }
  }
  return result('lookup', 'fail', `studentKey.lookup.sql failed: ${databaseMessage(firstError)}. Fix the query (it binds the cleaned key as :key)`);
}

async function lookupColumnCount(knex: Knex, sql: string, outcome: unknown): Promise<number | undefined> {
  const first = dialectFor(knex).rowsOf(outcome)[0];
  if (first) return Object.keys(first).length;
  switch (dialectName(knex)) {
    case 'postgres':
      return (outcome as { fields?: unknown[] }).fields?.length;
    case 'mysql':
      return ((outcome as [unknown, unknown[] | undefined])[1] ?? undefined)?.length;
    case 'sqlite': {
      // knex gives no column list for an empty result; better-sqlite3 reads it from the prepared statement.
      const compiled = knex.raw(sql, { key: SENTINEL_KEY }).toSQL().sql;
      const conn = (await knex.client.acquireConnection()) as { prepare(s: string): { columns(): unknown[] } };
      try {
        return conn.prepare(compiled).columns().length;
      } finally {
        await knex.client.releaseConnection(conn);
      }
    }
    default:
      return undefined;
  }
}

/** The job's own tables exist and every migration has run. Reads only: knex's own status call would create its table. */
export async function checkJobTables(knex: Knex, jobSchema: string | undefined): Promise<CheckResult> {
  try {
    const schema = checkJobSchema(String(knex.client.config.client), jobSchema);
    const ddl = () => (schema ? knex.schema.withSchema(schema) : knex.schema);
    const where = schema ? `schema ${schema}` : 'the default schema';
    if (!(await ddl().hasTable(MIGRATIONS_TABLE))) {
      return result('jobTables', 'fail', `the job's own tables are not in ${where} yet (no ${MIGRATIONS_TABLE}): run \`cloudcard-sync migrate\` (with an account that may create tables)`);
    }
    const status = await migrationStatus(knex, schema);
    if (status.pending.length) {
      return result('jobTables', 'fail', `${status.pending.length} migration(s) not applied in ${where} (${status.pending.join(', ')}): run \`cloudcard-sync migrate\``);
    }
    const missing: string[] = [];
    for (const t of Object.values(JOB_TABLES)) if (!(await ddl().hasTable(t))) missing.push(t);
    if (missing.length) {
      return result('jobTables', 'fail', `migrations are recorded as applied but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing from ${where}: someone dropped them; run \`cloudcard-sync migrate --rollback\` then \`cloudcard-sync migrate\``);
    }
    return result('jobTables', 'pass', `${Object.values(JOB_TABLES).length} tables in ${where}, migrations up to date`);
  } catch (err) {
    return result('jobTables', 'fail', `could not be checked: ${databaseMessage(err)}`);
  }
}

/**
 * Goes through the writer's own write path for a sentinel student, then rolls everything back: in upsert and
 * insert mode that writes the target row, the per-student row and the ledger row; in update mode (where the
 * writer finds no row for the sentinel) an UPDATE that matches nothing and a ledger insert.
 */
export async function checkWriteAccess(knex: Knex, mapping: Mapping, jobSchema: string | undefined, keyColumn?: ColumnInfo): Promise<CheckResult> {
  const target = mapping.target;
  const studentKey = sentinelStudentKey(target.keyType, keyColumn);
  const dialect = dialectFor(knex);
  const bytes = Buffer.from([0xff, 0xd8, 0xff, 0xd9]);
  const now = new Date();
  const photo: Photo = {
    id: SENTINEL_PHOTO_ID,
    version: 0,
    status: 'READY_FOR_DOWNLOAD',
    dateCreated: now.toISOString(),
    publicKey: 'cloudcard-sync-check',
    person: {
      id: SENTINEL_PHOTO_ID,
      identifier: String(studentKey),
      email: 'check@cloudcard-sync.invalid',
      username: 'cloudcard-sync-check',
      customFields: Object.fromEntries(Object.values(target.columns).flatMap((v) => ('customField' in v ? [[v.customField, 'check']] : []))),
      organization: { name: 'check' },
      cardholderGroup: { name: 'check' },
    },
  };
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const req: StoreRequest = {
    photoId: SENTINEL_PHOTO_ID,
    version: 0,
    studentKey,
    photoDate: now.toISOString(),
    bytes,
    sha256,
    contentType: 'image/jpeg',
    columns: resolveColumns(target.columns, { photo, studentKey, contentType: 'image/jpeg', byteLength: bytes.length, sha256, now }),
    runId: 'cloudcard-sync-check',
  };
  const schema = checkJobSchema(String(knex.client.config.client), jobSchema);
  try {
    await inRollback(knex, async (trx) => {
      // The writer opens its own transaction; on a transaction it becomes a savepoint inside ours.
      const writer = new PhotoWriter({ knex: trx, target, ...(schema ? { jobSchema: schema } : {}) });
      const outcome = await writer.store(req);
      if (outcome.kind === 'no-student-row') {
        await trx.raw('update ?? set ?? = ? where ?? = ?', [target.table, target.blobColumn, dialect.blobBinding(bytes), target.keyColumn, studentKey] as Knex.RawBinding[]);
        await trx(jobTable(JOB_TABLES.ledger, schema)).insert({
          photo_id: req.photoId,
          version: req.version,
          student_key: String(studentKey),
          photo_date: req.photoDate,
          byte_length: bytes.length,
          sha256,
          outcome: 'stored',
          committed_at: now,
          acknowledged_at: null,
          run_id: req.runId,
        });
      } else if (outcome.kind !== 'stored') {
        throw new Error(`the test write came back "${outcome.kind}" instead of "stored"`);
      }
    });
  } catch (err) {
    const msg = databaseMessage(err);
    if (isPermissionError(err)) {
      return result('write', 'fail', `the database account may not write: ${msg}. Grant it SELECT, INSERT, UPDATE on ${target.table} and on the job's tables (${Object.values(JOB_TABLES).join(', ')}), or use an account that has them`);
    }
    return result('write', 'fail', `a test write (rolled back) failed: ${msg}`);
  }
  const what = target.mode === 'update' ? `an UPDATE of ${target.table} (matching no row)` : `a ${target.mode} into ${target.table}`;
  return result('write', 'pass', `${what}, the per-student row and a ledger row were written for key ${JSON.stringify(studentKey)} and rolled back`);
}

/** A key no student has, that still fits the key column (its length, its sign). */
function sentinelStudentKey(keyType: TargetMapping['keyType'], keyColumn: ColumnInfo | undefined): string | number {
  if (keyType === 'integer') return keyColumn?.unsigned ? 0 : SENTINEL_PHOTO_ID;
  const max = keyColumn?.length;
  return max !== null && max !== undefined && max > 0 ? SENTINEL_KEY.slice(0, max) : SENTINEL_KEY;
}

class Rollback extends Error {}

/** Runs fn in a transaction that is always rolled back; fn's own error is rethrown. */
async function inRollback<T>(knex: Knex, fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  let value: T | undefined;
  try {
    await knex.transaction(async (trx) => {
      value = await fn(trx);
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
  return value as T;
}

function isPermissionError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const x = e as { code?: unknown; number?: unknown; errorNum?: unknown; message?: unknown };
    if (x.code === '42501') return true; // PostgreSQL insufficient_privilege
    if (typeof x.code === 'string' && /^ER_(TABLE|COLUMN|DB|SPECIFIC)ACCESS_DENIED/.test(x.code)) return true;
    if (typeof x.code === 'string' && x.code.startsWith('SQLITE_READONLY')) return true;
    if ([229, 230, 262, 300].includes(Number(x.number))) return true; // SQL Server permission denied
    if ([1031, 1950].includes(Number(x.errorNum))) return true; // ORA-01031 insufficient privileges, ORA-01950 no quota
  }
  return false;
}

/** The SQL text of each failed statement, by error, so databaseMessage() can cut knex's echo of it. */
const failedSql = new WeakMap<object, string>();
const watched = new WeakSet<object>();

/**
 * knex prefixes a database error with the statement it ran, bindings inlined. For a person that echo is noise
 * (and could carry sample values), so on the knex the checks use we keep the SQL uninlined and remember it per
 * error, to cut it off exactly. Errors pass up from nested transactions too: knex re-emits them on the root client.
 */
function watchFailedStatements(knex: Knex): void {
  if (watched.has(knex)) return;
  watched.add(knex);
  (knex.client.config as { compileSqlOnError?: boolean }).compileSqlOnError = false;
  knex.on('query-error', (err: unknown, query: { sql?: unknown }) => {
    if (typeof err === 'object' && err !== null && typeof query?.sql === 'string') failedSql.set(err, query.sql);
  });
}

/** The database's own words for an error, without knex's echo of the statement. */
export function databaseMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const sql = typeof err === 'object' && err !== null ? failedSql.get(err) : undefined;
  return (sql !== undefined && message.startsWith(`${sql} - `) ? message.slice(sql.length + 3) : message).trim();
}
