/**
 * SQL Server through knex's tedious client. knex binds a Buffer as VarBinary with length 'max' (see
 * Client_MSSQL._setReqInput), i.e. VARBINARY(MAX), so images are never truncated; blobBinding keeps the Buffer
 * as it is for that reason. MERGE needs HOLDLOCK on the target to be safe against concurrent inserts, and a
 * terminating semicolon.
 */
import type { Dialect } from './index.js';
import { errorCode, raw, selectStudent, placeholders, targetColumns } from './shared.js';

export const mssql: Dialect = {
  name: 'mssql',
  maxBindings: 2100,
  maxInList: 1000,
  blobBinding: (buf) => buf,
  ensureStudentRow: (k, table, key, now) =>
    raw(k, 
      'merge into ?? with (holdlock) as t using (select ? as ??) as s on t.?? = s.?? ' +
        'when not matched then insert (??, ??) values (s.??, ?);',
      [table, key, 'student_key', 'student_key', 'student_key', 'student_key', 'updated_at', 'student_key', now],
    ),
  lockStudentRow: (k, table, key) =>
    selectStudent(k, table, key, ' with (updlock, rowlock, holdlock)'),
  upsertTarget(k, target, row) {
    const { names, values } = targetColumns(target, row, row.blob);
    const updated = names.slice(1);
    const sql =
      `merge into ?? with (holdlock) as t using (select ${names.map(() => '? as ??').join(', ')}) as s on t.?? = s.?? ` +
      `when matched then update set ${updated.map(() => 't.?? = s.??').join(', ')} ` +
      `when not matched then insert (${placeholders(names.length, '??')}) values (${placeholders(names.length, 's.??')});`;
    return raw(k, sql, [
      target.table,
      ...names.flatMap((c, i) => [values[i], c]),
      target.keyColumn,
      target.keyColumn,
      ...updated.flatMap((c) => [c, c]),
      ...names,
      ...names,
    ]);
  },
  rowsOf: (result) => result as Array<Record<string, unknown>>,
  // 1205: chosen as deadlock victim.
  isTransientConflict: (err) => errorCode(err) === 1205,
  isUniqueViolation: (err) => [2601, 2627].includes(errorCode(err) as number),
};
