/**
 * Everything that differs between databases, behind one small interface; the writer (../writer.ts) is the
 * same for all of them. Each function builds a knex Raw from identifiers (`??`, quoted by knex) and values
 * (`?`), so the SQL can be inspected with .toSQL() without a database (test/dialect-sql.test.ts).
 */
import type { Knex } from 'knex';
import { dialectName, type DialectName } from '../connection.js';
import { mssql } from './mssql.js';
import { mysql } from './mysql.js';
import { oracle } from './oracle.js';
import { postgres } from './postgres.js';
import { sqlite } from './sqlite.js';

/** The target table as the mapping names it. */
export interface TargetTable {
  /** `table` or `schema.table`; knex quotes each part exactly as written. */
  table: string;
  keyColumn: string;
  blobColumn: string;
}

/** One row for the target table: the key, the image, and the mapping's extra columns. */
export interface TargetRow {
  key: string | number;
  blob: Buffer;
  columns: Record<string, unknown>;
}

/** The photo a writer wants to make the student's current one. */
export interface StudentClaim {
  studentKey: string;
  photoId: number;
  version: number;
  photoDate: string;
  now: Date;
}

export interface Dialect {
  name: DialectName;
  /** Most bind parameters one statement may carry (SQL Server 2100, Oracle 65535, SQLite 32766, ...). */
  maxBindings: number;
  /** Longest IN (...) list the database accepts (Oracle: 1000). */
  maxInList: number;
  /** The value to bind for an image; some drivers need to be told it is a BLOB. */
  blobBinding(buf: Buffer): unknown;
  /**
   * A statement run first in every write transaction, for databases that must take the write lock up front
   * (SQLite: otherwise two processes can deadlock upgrading read locks). Undefined where not needed.
   */
  beginWrite?(k: Knex, lockTable: string): Knex.Raw;
  /** Creates the per-student row if absent, without failing when a concurrent writer creates it first. */
  ensureStudentRow(k: Knex, studentTable: string, studentKey: string, now: Date): Knex.Raw;
  /** Reads the per-student row and holds a write lock on it until the transaction ends. */
  lockStudentRow(k: Knex, studentTable: string, studentKey: string): Knex.Raw;
  /**
   * Optional, one round trip instead of three (ensure, lock, ledger check): creates or locks the per-student
   * row, moves it to this photo when this photo is newer (date, then id, then version), and returns the row
   * as it now stands plus whether the ledger already holds (photoId, version). See writer.ts for how the
   * answer is read.
   */
  claimStudentRow?(k: Knex, tables: { student: string; ledger: string }, claim: StudentClaim): Knex.Raw;
  /** Optional: how many rows a raw UPDATE changed, so an update by key needs no SELECT first. */
  affectedRows?(result: unknown): number;
  /** The native single-statement upsert (keyColumn must be unique). */
  upsertTarget(k: Knex, target: TargetTable, row: TargetRow): Knex.Raw;
  /** The rows a raw SELECT returned, whatever shape the driver gives them in. */
  rowsOf(result: unknown): Array<Record<string, unknown>>;
  /** Whether an error is a lock conflict (deadlock, serialization failure, busy) worth retrying the transaction for. */
  isTransientConflict(err: unknown): boolean;
  /** Whether an error is a unique-key violation. */
  isUniqueViolation(err: unknown): boolean;
}

const DIALECTS: Record<DialectName, Dialect> = { postgres, mysql, mssql, oracle, sqlite };

export function dialectFor(knex: Knex): Dialect {
  return DIALECTS[dialectName(knex)];
}

export function dialectByName(name: DialectName): Dialect {
  return DIALECTS[name];
}
