/**
 * The contract between the run (sync.ts) and the transactional writer (target/). One implementation,
 * target/writer.ts, serves every database; what differs per database lives in target/dialects/.
 */
export type StudentKey = string | number;

export interface StoreRequest {
  photoId: number;
  /** The photo's version as listed; 0 when CloudCard sent none. (photoId, version) is the ledger key. */
  version: number;
  studentKey: StudentKey;
  /** dateCreated normalised to ISO-8601 UTC with milliseconds, so string order is time order. */
  photoDate: string;
  bytes: Buffer;
  /** Hex SHA-256 of bytes, computed once when the bytes were downloaded. */
  sha256: string;
  contentType: 'image/jpeg' | 'image/png';
  /** Extra target columns, already resolved from the mapping (a Date for `now`). */
  columns: Record<string, unknown>;
  runId: string;
}

export type StoreOutcome =
  /** The blob was written and the ledger row committed with it. */
  | { kind: 'stored' }
  /** The ledger already had (photoId, version) committed: nothing was written. */
  | { kind: 'already-stored' }
  /** A newer photo (dateCreated, then id) for the same student is already in the table: the ledger records this one, the table is untouched. */
  | { kind: 'superseded'; byPhotoId: number }
  /** mode is `update` and the student has no row: nothing written, nothing recorded. */
  | { kind: 'no-student-row' };

export interface LedgerRow {
  photo_id: number;
  version: number;
  student_key: string;
  photo_date: string;
  byte_length: number;
  sha256: string;
  outcome: 'stored' | 'superseded';
  committed_at: Date | string;
  acknowledged_at: Date | string | null;
  run_id: string;
}

/** Test hooks that run inside the transaction, to prove rollback. Never set in production. */
export interface StoreHooks {
  afterWrite?: () => Promise<void> | void;
}
