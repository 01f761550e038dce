/**
 * MySQL and MariaDB. A LONGBLOB value travels in one packet, so the server's max_allowed_packet must be larger
 * than the largest image (MariaDB's default is 16 MB, MySQL 8's 64 MB); mapping.images.maxBytes should stay below it.
 */
import type { Dialect } from './index.js';
import { errorCode, raw, selectStudent, placeholders, targetColumns } from './shared.js';

export const mysql: Dialect = {
  name: 'mysql',
  maxBindings: 65535,
  maxInList: 10000,
  blobBinding: (buf) => buf,
  // Not INSERT IGNORE: that would also hide truncation and other real errors.
  ensureStudentRow: (k, table, key, now) =>
    raw(k, 'insert into ?? (??, ??) values (?, ?) on duplicate key update ?? = ??', [
      table, 'student_key', 'updated_at', key, now, 'student_key', 'student_key',
    ]),
  lockStudentRow: (k, table, key) => selectStudent(k, table, key, '', ' for update'),
  upsertTarget(k, target, row) {
    const { names, values } = targetColumns(target, row, row.blob);
    const updated = names.slice(1);
    // VALUES(col) works on MariaDB and MySQL 8 (where 8.0.20+ only warns that it is deprecated).
    const sql =
      `insert into ?? (${placeholders(names.length, '??')}) values (${placeholders(names.length, '?')}) ` +
      `on duplicate key update ${updated.map(() => '?? = values(??)').join(', ')}`;
    return raw(k, sql, [target.table, ...names, ...values, ...updated.flatMap((c) => [c, c])]);
  },
  affectedRows: (result) => (result as [{ affectedRows: number }])[0].affectedRows,
  rowsOf: (result) => (result as [Array<Record<string, unknown>>, unknown])[0],
  // 1213 deadlock, 1205 lock wait timeout.
  isTransientConflict: (err) => ['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 1213, 1205].includes(errorCode(err) as string),
  isUniqueViolation: (err) => errorCode(err) === 'ER_DUP_ENTRY',
};
