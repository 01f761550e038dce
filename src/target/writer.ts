/**
 * The transactional writer: one photo, one transaction. The image, the per-student row and the ledger row
 * commit together or not at all, so a photo is acknowledged (after COMMIT, by the caller) only when it is
 * safely stored, and a photo seen again is recognised by its ledger row instead of being written twice.
 */
import type { Knex } from 'knex';
import type { TargetMapping } from '../config/mapping.js';
import { PhotoError } from '../errors.js';
import { dialectFor, type Dialect, type TargetRow } from './dialects/index.js';
import { JOB_TABLES, checkJobSchema, jobTable } from './job-tables.js';
import { lowerKeys } from './rows.js';
import type { LedgerRow, StoreHooks, StoreOutcome, StoreRequest, StudentKey } from './types.js';

/** How often a transaction that lost a deadlock (or found SQLite busy) is tried again before giving up. */
const CONFLICT_ATTEMPTS = 5;

/** Thrown inside the transaction to roll it back when update mode finds no row for the student. */
class NoStudentRow extends Error {}

/** What the per-student claim decided: write the photo, or record it without writing. */
type Claim =
  | { kind: 'already-stored' }
  | { kind: 'superseded'; byPhotoId: number }
  /** studentRowMoved: the claim already pointed the student's row at this photo. */
  | { kind: 'write'; studentRowMoved: boolean };

interface StudentRow {
  photoId: number | null;
  version: number | null;
  photoDate: string | null;
}

export interface PhotoWriterOptions {
  knex: Knex;
  target: TargetMapping;
  jobSchema?: string;
  /** The mapping's lookup query (studentKey.lookup.sql), binding :key. */
  lookupSql?: string;
}

export class PhotoWriter {
  private readonly knex: Knex;
  private readonly target: TargetMapping;
  private readonly dialect: Dialect;
  private readonly lookupSql: string | undefined;
  private readonly tables: { ledger: string; student: string; lock: string };

  constructor(opts: PhotoWriterOptions) {
    this.knex = opts.knex;
    this.target = opts.target;
    this.lookupSql = opts.lookupSql;
    this.dialect = dialectFor(opts.knex);
    const schema = checkJobSchema(String(opts.knex.client.config.client), opts.jobSchema);
    this.tables = {
      ledger: jobTable(JOB_TABLES.ledger, schema),
      student: jobTable(JOB_TABLES.studentPhoto, schema),
      lock: jobTable(JOB_TABLES.lock, schema),
    };
  }

  async store(req: StoreRequest, hooks?: StoreHooks): Promise<StoreOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.knex.transaction((trx) => this.storeIn(trx, req, hooks));
      } catch (err) {
        if (err instanceof NoStudentRow) return { kind: 'no-student-row' };
        // A unique violation here is a concurrent writer that committed this very photo first (see
        // claimInOneStatement): the next attempt finds its ledger row.
        if (attempt < CONFLICT_ATTEMPTS && (this.dialect.isTransientConflict(err) || this.dialect.isUniqueViolation(err))) {
          await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 50));
          continue;
        }
        throw err;
      }
    }
  }

  private async storeIn(trx: Knex.Transaction, req: StoreRequest, hooks?: StoreHooks): Promise<StoreOutcome> {
    const studentKey = String(req.studentKey);
    const now = new Date();
    if (this.dialect.beginWrite) await this.dialect.beginWrite(trx, this.tables.lock);

    // Every writer of this student queues on the student's row until the transaction ends (invariant 4).
    const claim = this.dialect.claimStudentRow ? await this.claimInOneStatement(trx, req, studentKey, now) : await this.claimStepByStep(trx, req, studentKey, now);
    if (claim.kind === 'already-stored') return claim;
    if (claim.kind === 'superseded') {
      await this.insertLedger(trx, req, studentKey, 'superseded', now);
      return claim;
    }

    await this.writeTarget(trx, req);
    if (!claim.studentRowMoved) {
      await trx(this.tables.student)
        .where({ student_key: studentKey })
        .update({ photo_id: req.photoId, version: req.version, photo_date: req.photoDate, updated_at: now });
    }
    await this.insertLedger(trx, req, studentKey, 'stored', now);
    await hooks?.afterWrite?.();
    return { kind: 'stored' };
  }

  /** Ensure, lock, check the ledger, compare: the portable way, three round trips. */
  private async claimStepByStep(trx: Knex.Transaction, req: StoreRequest, studentKey: string, now: Date): Promise<Claim> {
    await this.ensureStudentRow(trx, studentKey, now);
    const student = this.toStudentRow(this.dialect.rowsOf(await this.dialect.lockStudentRow(trx, this.tables.student, studentKey))[0]);
    // Checked under the lock, where it is final: an earlier run or a concurrent writer may have stored this very photo.
    if (await this.inLedger(trx, req)) return { kind: 'already-stored' };
    if (isNewer(student, req)) return { kind: 'superseded', byPhotoId: student.photoId as number };
    return { kind: 'write', studentRowMoved: false };
  }

  /**
   * The same decision in one statement (PostgreSQL, SQLite): the row comes back already moved to our photo
   * if ours is newer. The ledger check in it may predate a concurrent writer's commit of this very photo
   * (PostgreSQL evaluates it on the statement's snapshot, taken before waiting for the lock); then our
   * ledger insert meets that writer's row and the transaction is retried, finding it (see store()).
   */
  private async claimInOneStatement(trx: Knex.Transaction, req: StoreRequest, studentKey: string, now: Date): Promise<Claim> {
    const tables = { student: this.tables.student, ledger: this.tables.ledger };
    const claim = { studentKey, photoId: req.photoId, version: req.version, photoDate: req.photoDate, now };
    const row = lowerKeys(this.dialect.rowsOf(await this.dialect.claimStudentRow!(trx, tables, claim))[0] ?? {});
    if (row.in_ledger === true || Number(row.in_ledger) === 1) return { kind: 'already-stored' };
    if (Number(row.photo_id) !== req.photoId || Number(row.version) !== req.version) return { kind: 'superseded', byPhotoId: Number(row.photo_id) };
    return { kind: 'write', studentRowMoved: true };
  }

  private async ensureStudentRow(trx: Knex.Transaction, studentKey: string, now: Date): Promise<void> {
    try {
      await this.dialect.ensureStudentRow(trx, this.tables.student, studentKey, now);
    } catch (err) {
      // Oracle's MERGE is not atomic: a concurrent session may insert the row first. Only that statement
      // failed; the row now exists, which is all we wanted.
      if (!this.dialect.isUniqueViolation(err)) throw err;
    }
  }

  private async writeTarget(trx: Knex.Transaction, req: StoreRequest): Promise<void> {
    const { table, keyColumn, blobColumn, mode, keyIsUnique } = this.target;
    const row: TargetRow = { key: req.studentKey, blob: req.bytes, columns: req.columns };
    if (mode === 'upsert' && keyIsUnique) {
      await this.dialect.upsertTarget(trx, { table, keyColumn, blobColumn }, row);
      return;
    }
    if (mode === 'insert') {
      await this.insertTarget(trx, row);
      return;
    }
    // Update by key, else insert (upsert) or give up (update). Safe as a read-then-write because we hold the
    // per-student lock, so nobody else writes this key meanwhile. Where the driver reports how many rows an
    // UPDATE changed, the UPDATE itself is the existence check.
    const sets = [blobColumn, ...Object.keys(row.columns)];
    const values = [this.dialect.blobBinding(row.blob), ...Object.values(row.columns)];
    const update = () =>
      trx.raw(`update ?? set ${sets.map(() => '?? = ?').join(', ')} where ?? = ?`, [
        table,
        ...sets.flatMap((c, i) => [c, values[i]]),
        keyColumn,
        row.key,
      ] as Knex.RawBinding[]);
    let exists: boolean;
    if (this.dialect.affectedRows) {
      exists = this.dialect.affectedRows(await update()) > 0;
    } else {
      exists = (await trx(table).where(keyColumn, req.studentKey as Knex.Value).first(keyColumn)) !== undefined;
      if (exists) await update();
    }
    if (exists) return;
    if (mode === 'update') throw new NoStudentRow();
    await this.insertTarget(trx, row);
  }

  private async insertTarget(trx: Knex.Transaction, row: TargetRow): Promise<void> {
    const names = [this.target.keyColumn, this.target.blobColumn, ...Object.keys(row.columns)];
    const values = [row.key, this.dialect.blobBinding(row.blob), ...Object.values(row.columns)];
    const list = (p: string) => names.map(() => p).join(', ');
    await trx.raw(`insert into ?? (${list('??')}) values (${list('?')})`, [this.target.table, ...names, ...values] as Knex.RawBinding[]);
  }

  private async inLedger(k: Knex, req: StoreRequest): Promise<boolean> {
    const row = await k(this.tables.ledger).where({ photo_id: req.photoId, version: req.version }).first('photo_id');
    return row !== undefined;
  }

  private async insertLedger(trx: Knex.Transaction, req: StoreRequest, studentKey: string, outcome: LedgerRow['outcome'], now: Date): Promise<void> {
    await trx(this.tables.ledger).insert({
      photo_id: req.photoId,
      version: req.version,
      student_key: studentKey,
      photo_date: req.photoDate,
      byte_length: req.bytes.length,
      sha256: req.sha256,
      outcome,
      committed_at: now,
      acknowledged_at: null,
      run_id: req.runId,
    });
  }

  private toStudentRow(raw: Record<string, unknown> | undefined): StudentRow {
    const row = lowerKeys(raw ?? {});
    return {
      photoId: row.photo_id == null ? null : Number(row.photo_id),
      version: row.version == null ? null : Number(row.version),
      photoDate: row.photo_date == null ? null : String(row.photo_date),
    };
  }

  async ledgerEntry(photoId: number, version: number): Promise<LedgerRow | undefined> {
    const row = await this.knex(this.tables.ledger).where({ photo_id: photoId, version }).first();
    return row ? toLedgerRow(row) : undefined;
  }

  /** Records that CloudCard was told. Chunked to stay under each database's parameter and IN-list limits. */
  async markAcknowledged(keys: Array<{ photoId: number; version: number }>, at: Date = new Date()): Promise<void> {
    const byVersion = new Map<number, number[]>();
    for (const { photoId, version } of keys) {
      const ids = byVersion.get(version) ?? [];
      ids.push(photoId);
      byVersion.set(version, ids);
    }
    const chunk = Math.min(this.dialect.maxInList, this.dialect.maxBindings - 2);
    for (const [version, ids] of byVersion) {
      for (let i = 0; i < ids.length; i += chunk) {
        await this.knex(this.tables.ledger)
          .where('version', version)
          .whereIn('photo_id', ids.slice(i, i + chunk))
          .whereNull('acknowledged_at')
          .update({ acknowledged_at: at });
      }
    }
  }

  /** Committed photos CloudCard has not been told about yet (a crash between COMMIT and the PUT), oldest first. */
  async unacknowledged(limit = 1000): Promise<LedgerRow[]> {
    const rows = await this.knex(this.tables.ledger)
      .whereNull('acknowledged_at')
      .orderBy([{ column: 'committed_at' }, { column: 'photo_id' }, { column: 'version' }])
      .limit(limit);
    return rows.map(toLedgerRow);
  }

  /** Runs the mapping's lookup query for one cleaned key: no row → null, several different values → ambiguous. */
  async lookupKey(cleanKey: string): Promise<StudentKey | null> {
    if (!this.lookupSql) return cleanKey;
    const rows = this.dialect.rowsOf(await this.knex.raw(this.lookupSql, { key: cleanKey }));
    const values = new Map<string, StudentKey>();
    for (const row of rows) {
      const v = Object.values(row)[0];
      if (v === null || v === undefined) continue;
      const key: StudentKey = typeof v === 'number' ? v : String(v);
      values.set(String(key), key);
    }
    if (values.size > 1) {
      throw new PhotoError(
        `The lookup query returned ${values.size} different students for key "${cleanKey}"; fix the data or the query so each key finds one student`,
        'ambiguous-key',
        false,
      );
    }
    return values.values().next().value ?? null;
  }
}

/** Whether the student's stored photo is newer than this one: by date, then id, then version. */
function isNewer(stored: StudentRow, req: StoreRequest): boolean {
  if (stored.photoId === null || stored.photoDate === null) return false;
  if (stored.photoDate !== req.photoDate) return stored.photoDate > req.photoDate;
  if (stored.photoId !== req.photoId) return stored.photoId > req.photoId;
  return (stored.version ?? 0) > req.version;
}

/** Drivers differ: BIGINT comes back as a string (pg, tedious), timestamps as numbers (SQLite). */
function toDate(v: unknown): Date | string {
  if (v instanceof Date) return v;
  if (typeof v === 'number') return new Date(v);
  return String(v);
}

function toLedgerRow(raw: Record<string, unknown>): LedgerRow {
  const r = lowerKeys(raw);
  return {
    photo_id: Number(r.photo_id),
    version: Number(r.version),
    student_key: String(r.student_key),
    photo_date: String(r.photo_date),
    byte_length: Number(r.byte_length),
    sha256: String(r.sha256),
    outcome: r.outcome as LedgerRow['outcome'],
    committed_at: toDate(r.committed_at),
    acknowledged_at: r.acknowledged_at == null ? null : toDate(r.acknowledged_at),
    run_id: String(r.run_id),
  };
}
