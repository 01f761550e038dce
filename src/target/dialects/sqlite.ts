import type { Dialect } from './index.js';
import { errorCode, raw, selectStudent, insertOnConflictUpdate, insertStudentOnConflictDoNothing, upsertStudentIfNewer } from './shared.js';

export const sqlite: Dialect = {
  name: 'sqlite',
  maxBindings: 32766,
  maxInList: 10000,
  blobBinding: (buf) => buf,
  /**
   * A write that changes nothing still takes SQLite's write lock. Taking it first means a second process waits
   * (busy_timeout) instead of failing with SQLITE_BUSY when both try to upgrade a read transaction.
   */
  beginWrite: (k, lockTable) => raw(k, 'update ?? set ?? = ?? where 1 = 0', [lockTable, 'name', 'name']),
  ensureStudentRow: insertStudentOnConflictDoNothing,
  // The transaction already holds SQLite's single write lock (beginWrite), so a plain read is serialised.
  lockStudentRow: (k, table, key) => selectStudent(k, table, key),
  claimStudentRow: upsertStudentIfNewer,
  affectedRows: (result) => (result as { changes: number }).changes,
  upsertTarget: (k, target, row) => insertOnConflictUpdate(k, target, row, row.blob),
  rowsOf: (result) => result as Array<Record<string, unknown>>,
  isTransientConflict: (err) => String(errorCode(err)).startsWith('SQLITE_BUSY'),
  isUniqueViolation: (err) => ['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY'].includes(String(errorCode(err))),
};
