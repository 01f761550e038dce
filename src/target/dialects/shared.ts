/** SQL pieces several dialects write the same way. Identifiers always go through `??`. */
import type { Knex } from 'knex';
import type { StudentClaim, TargetRow, TargetTable } from './index.js';

/** Target columns in a fixed order: key, blob, then the extra columns in mapping order. */
export function targetColumns(target: TargetTable, row: TargetRow, blob: unknown): { names: string[]; values: unknown[] } {
  const extra = Object.entries(row.columns);
  return {
    names: [target.keyColumn, target.blobColumn, ...extra.map(([c]) => c)],
    values: [row.key, blob, ...extra.map(([, v]) => v)],
  };
}

export const placeholders = (n: number, p: string): string => Array.from({ length: n }, () => p).join(', ');

/**
 * `insert into T (k, b, c...) values (?, ?, ?...) on conflict (k) do update set b = excluded.b, c = excluded.c`
 * PostgreSQL and SQLite share this form (SQLite ≥ 3.24).
 */
export function insertOnConflictUpdate(k: Knex, target: TargetTable, row: TargetRow, blob: unknown): Knex.Raw {
  const { names, values } = targetColumns(target, row, blob);
  const updated = names.slice(1);
  const sql =
    `insert into ?? (${placeholders(names.length, '??')}) values (${placeholders(names.length, '?')}) ` +
    `on conflict (??) do update set ${updated.map(() => '?? = excluded.??').join(', ')}`;
  return raw(k, sql, [target.table, ...names, ...values, target.keyColumn, ...updated.flatMap((c) => [c, c])]);
}

export function insertStudentOnConflictDoNothing(k: Knex, studentTable: string, studentKey: string, now: Date): Knex.Raw {
  return raw(k, 'insert into ?? (??, ??) values (?, ?) on conflict (??) do nothing', [
    studentTable, 'student_key', 'updated_at', studentKey, now, 'student_key',
  ]);
}

/**
 * PostgreSQL and SQLite (≥ 3.35): the per-student claim in one statement. ON CONFLICT DO UPDATE locks the
 * row (SQLite holds its single write lock already); the CASEs keep the stored photo unless ours is newer by
 * (date, id, version); RETURNING gives the row as it now stands and whether the ledger has our photo.
 */
export function upsertStudentIfNewer(k: Knex, tables: { student: string; ledger: string }, c: StudentClaim): Knex.Raw {
  const newer = '(excluded.??, excluded.??, excluded.??) > (coalesce(cur.??, ?), coalesce(cur.??, -1), coalesce(cur.??, -1))';
  const newerBindings = ['photo_date', 'photo_id', 'version', 'photo_date', '', 'photo_id', 'version'];
  const moved = ['photo_id', 'version', 'photo_date', 'updated_at'];
  const sql =
    'insert into ?? as cur (??, ??, ??, ??, ??) values (?, ?, ?, ?, ?) on conflict (??) do update set ' +
    moved.map(() => `?? = case when ${newer} then excluded.?? else cur.?? end`).join(', ') +
    ' returning ??, ??, ??, exists(select 1 from ?? where ?? = ? and ?? = ?) as ??';
  return raw(k, sql, [
    tables.student, 'student_key', 'photo_id', 'version', 'photo_date', 'updated_at',
    c.studentKey, c.photoId, c.version, c.photoDate, c.now,
    'student_key',
    ...moved.flatMap((col) => [col, ...newerBindings, col, col]),
    'photo_id', 'version', 'photo_date', tables.ledger, 'photo_id', c.photoId, 'version', c.version, 'in_ledger',
  ]);
}

/**
 * SQL Server and Oracle upsert with MERGE, and spell it differently in four places: how the target is
 * aliased (SQL Server also takes HOLDLOCK there, so two MERGEs cannot both decide "not matched"), how the
 * one-row source ends (Oracle selects from dual), whether ON takes parentheses, and the closing semicolon
 * SQL Server requires.
 */
export interface MergeSyntax {
  target: string;
  sourceEnd: string;
  on: (condition: string) => string;
  end: string;
}

/** `merge into T <alias> using (select ? as k, ? as b, ...) s on t.k = s.k when matched then update ... when not matched then insert ...` */
export function mergeUpsert(k: Knex, target: TargetTable, row: TargetRow, blob: unknown, m: MergeSyntax): Knex.Raw {
  const { names, values } = targetColumns(target, row, blob);
  // The key is only matched and inserted: Oracle cannot update a column used in ON, and it never changes anyway.
  const updated = names.slice(1);
  const sql =
    `merge into ??${m.target} using (select ${names.map(() => '? as ??').join(', ')}${m.sourceEnd} ${m.on('t.?? = s.??')} ` +
    `when matched then update set ${updated.map(() => 't.?? = s.??').join(', ')} ` +
    `when not matched then insert (${placeholders(names.length, '??')}) values (${placeholders(names.length, 's.??')})${m.end}`;
  return raw(k, sql, [
    target.table,
    ...names.flatMap((c, i) => [values[i], c]),
    target.keyColumn,
    target.keyColumn,
    ...updated.flatMap((c) => [c, c]),
    ...names,
    ...names,
  ]);
}

/** Creates the per-student row if absent, with MERGE (see MergeSyntax). */
export function mergeInsertStudent(k: Knex, studentTable: string, studentKey: string, now: Date, m: MergeSyntax): Knex.Raw {
  return raw(
    k,
    `merge into ??${m.target} using (select ? as ??${m.sourceEnd} ${m.on('t.?? = s.??')} when not matched then insert (??, ??) values (s.??, ?)${m.end}`,
    [studentTable, studentKey, 'student_key', 'student_key', 'student_key', 'student_key', 'updated_at', 'student_key', now],
  );
}

/**
 * Job-table columns are lower-case and created quoted (by knex), so raw SQL must quote them too: unquoted,
 * Oracle would look for STUDENT_KEY. They are bound as `??` like every other identifier.
 */
export const STUDENT_COLUMNS = ['student_key', 'photo_id', 'version', 'photo_date'];

/** `select <student columns> from T<hint> where student_key = ?<suffix>` */
export function selectStudent(k: Knex, studentTable: string, studentKey: string, tableHint = '', suffix = ''): Knex.Raw {
  return raw(k, `select ?? from ??${tableHint} where ?? = ?${suffix}`, [STUDENT_COLUMNS, studentTable, 'student_key', studentKey]);
}

/** A code/errno/number property, as the different drivers name it. */
export function errorCode(err: unknown): string | number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; errno?: unknown; number?: unknown; errorNum?: unknown };
  for (const v of [e.code, e.errorNum, e.number, e.errno]) if (typeof v === 'string' || typeof v === 'number') return v;
  return undefined;
}

/** knex.raw with bindings of any type: images, dates and driver bind objects are all valid values here. */
export function raw(k: Knex, sql: string, bindings: unknown[]): Knex.Raw {
  return k.raw(sql, bindings as Knex.RawBinding[]);
}
