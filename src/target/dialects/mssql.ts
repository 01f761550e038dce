/**
 * SQL Server through knex's tedious client. knex binds a Buffer as VarBinary with length 'max' (see
 * Client_MSSQL._setReqInput), i.e. VARBINARY(MAX), so images are never truncated; blobBinding keeps the Buffer
 * as it is for that reason. MERGE needs HOLDLOCK on the target to be safe against concurrent inserts, and a
 * terminating semicolon.
 */
import type { Dialect } from './index.js';
import { errorCode, mergeInsertStudent, mergeUpsert, selectStudent, type MergeSyntax } from './shared.js';

const MERGE: MergeSyntax = { target: ' with (holdlock) as t', sourceEnd: ') as s', on: (c) => `on ${c}`, end: ';' };

export const mssql: Dialect = {
  name: 'mssql',
  maxBindings: 2100,
  maxInList: 1000,
  blobBinding: (buf) => buf,
  ensureStudentRow: (k, table, key, now) => mergeInsertStudent(k, table, key, now, MERGE),
  lockStudentRow: (k, table, key) =>
    selectStudent(k, table, key, ' with (updlock, rowlock, holdlock)'),
  upsertTarget: (k, target, row) => mergeUpsert(k, target, row, row.blob, MERGE),
  rowsOf: (result) => result as Array<Record<string, unknown>>,
  // 1205: chosen as deadlock victim.
  isTransientConflict: (err) => errorCode(err) === 1205,
  isUniqueViolation: (err) => [2601, 2627].includes(errorCode(err) as number),
};
