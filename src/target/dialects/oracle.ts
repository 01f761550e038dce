/**
 * Oracle through node-oracledb in thin mode. A Buffer bound as-is travels as RAW, which stops at 32 KB in SQL;
 * images must be bound as BLOB. knex passes bind objects ({ type, val }) through to oracledb untouched for raw
 * statements, so every statement that carries an image here is a raw statement with a BLOB bind.
 * Identifiers are quoted exactly as the mapping writes them: Oracle's own names are upper case (SPRIDEN).
 */
import { createRequire } from 'node:module';
import type { Dialect } from './index.js';
import { errorCode, mergeInsertStudent, mergeUpsert, selectStudent, type MergeSyntax } from './shared.js';

const MERGE: MergeSyntax = { target: ' t', sourceEnd: ' from dual) s', on: (c) => `on (${c})`, end: '' };

interface OracleDbTypes {
  DB_TYPE_BLOB: unknown;
}
let driver: OracleDbTypes | undefined;
/** Loaded on first use, so other databases never load oracledb. */
function oracledb(): OracleDbTypes {
  driver ??= createRequire(import.meta.url)('oracledb') as OracleDbTypes;
  return driver;
}

export interface OracleBlobBind {
  type: unknown;
  val: Buffer;
}

export const oracle: Dialect = {
  name: 'oracle',
  maxBindings: 65535,
  // ORA-01795: at most 1000 expressions in a list.
  maxInList: 1000,
  blobBinding: (buf): OracleBlobBind => ({ type: oracledb().DB_TYPE_BLOB, val: buf }),
  ensureStudentRow: (k, table, key, now) => mergeInsertStudent(k, table, key, now, MERGE),
  lockStudentRow: (k, table, key) => selectStudent(k, table, key, '', ' for update'),
  upsertTarget: (k, target, row) => mergeUpsert(k, target, row, oracle.blobBinding(row.blob), MERGE),
  rowsOf: (result) => result as Array<Record<string, unknown>>,
  // ORA-00060 deadlock, ORA-08177 serialization failure.
  isTransientConflict: (err) => [60, 8177].includes(errorCode(err) as number),
  // ORA-00001: a MERGE racing another session's insert of the same key.
  isUniqueViolation: (err) => errorCode(err) === 1 || /ORA-00001/.test(String((err as Error)?.message)),
};
