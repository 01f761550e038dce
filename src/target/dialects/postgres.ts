import type { Dialect } from './index.js';
import { errorCode, selectStudent, insertOnConflictUpdate, insertStudentOnConflictDoNothing, upsertStudentIfNewer } from './shared.js';

export const postgres: Dialect = {
  name: 'postgres',
  maxBindings: 65535,
  maxInList: 10000,
  blobBinding: (buf) => buf,
  ensureStudentRow: insertStudentOnConflictDoNothing,
  lockStudentRow: (k, table, key) => selectStudent(k, table, key, '', ' for update'),
  claimStudentRow: upsertStudentIfNewer,
  affectedRows: (result) => (result as { rowCount: number | null }).rowCount ?? 0,
  upsertTarget: (k, target, row) => insertOnConflictUpdate(k, target, row, row.blob),
  rowsOf: (result) => (result as { rows: Array<Record<string, unknown>> }).rows,
  // 40P01 deadlock, 40001 serialization failure.
  isTransientConflict: (err) => ['40P01', '40001'].includes(String(errorCode(err))),
  isUniqueViolation: (err) => errorCode(err) === '23505',
};
