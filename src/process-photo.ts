/**
 * One photo, one unit of work: resolve its student, write it in one transaction, and only after COMMIT
 * tell CloudCard. Every way this can go wrong ends in a PhotoOutcome with a specific reason; nothing here
 * throws for a single bad photo, so the run goes on with the others.
 */
import type { CloudCardClient, DownloadedImage } from './cloudcard/client.js';
import type { Photo } from './cloudcard/types.js';
import type { Mapping } from './config/mapping.js';
import { PhotoError } from './errors.js';
import type { Logger } from './log.js';
import { normalizeDate, resolveColumns } from './mapping/column-values.js';
import { extractStudentKey } from './mapping/student-key.js';
import type { LimitFunction } from 'p-limit';
import type { AcknowledgementLog } from './acknowledgements.js';
import { isConnectionError } from './target/db-errors.js';
import { failpoint, withCommitFailpoint } from './failpoints.js';
import type { StoreHooks, StoreRequest, StudentKey } from './target/types.js';
import type { PhotoWriter } from './target/writer.js';
import type { PhotoOutcome } from './sources/source.js';

/** Reason codes that mean "no student record for this photo", whatever the mapping then does with it. */
export const UNMATCHED_CODES: ReadonlySet<string> = new Set(['no-identifier', 'no-student', 'key-pattern', 'key-not-integer', 'ambiguous-key']);

export interface PhotoContext {
  client: CloudCardClient;
  writer: PhotoWriter;
  mapping: Mapping;
  runId: string;
  dryRun: boolean;
  /** See RunOptions.ledgerExists. */
  ledgerExists: boolean;
  /** Look the photo up in the ledger before downloading it (see PhotoSource.redelivers). */
  precheckLedger: boolean;
  acks: AcknowledgementLog;
  logger: Logger;
  /** Called when the database connection itself failed, so the run can stop taking new photos. */
  onDatabaseDown(err: unknown): void;
  hooks?: StoreHooks;
  /**
   * The two stages that hold something scarce, each bounded on its own (p-limit): `download` holds a
   * connection to object storage and fills an image buffer; `write` holds a database connection. The
   * status PUT holds neither, so it runs outside both; sync.ts bounds the photos in flight overall.
   */
  limits: { download: LimitFunction; write: LimitFunction };
}

export async function processPhoto(photo: Photo, ctx: PhotoContext): Promise<PhotoOutcome> {
  const version = photo.version ?? 0;
  // runId, photoId and version come with every line from the log context set by sync.ts.
  const log = ctx.logger;
  let studentKey: string | undefined;
  try {
    // A photo already committed is only acknowledged. The write transaction finds that out anyway; asking
    // before the download as well pays off only where redelivery is common (a status queue), and a dry run
    // writes nothing, so it must ask here.
    if ((ctx.dryRun || ctx.precheckLedger) && ctx.ledgerExists && (await ctx.limits.write(() => ctx.writer.ledgerEntry(photo.id, version)))) {
      if (ctx.dryRun) return { kind: 'already-stored', acknowledged: false, reason: 'already stored; dry run: would acknowledge' };
      return await acknowledge(photo, { kind: 'already-stored', acknowledged: false }, ctx);
    }

    const extracted = extractStudentKey(photo, ctx.mapping.studentKey);
    if (!extracted.ok) return await setAside(photo, ctx.mapping.unmatched.action, extracted.code, withHint(extracted.reason, ctx), ctx);
    studentKey = extracted.key;

    let image: DownloadedImage;
    try {
      image = await ctx.limits.download(() => ctx.client.downloadBytes(photo, { maxBytes: ctx.mapping.images.maxBytes, allowedTypes: ctx.mapping.images.types }));
    } catch (err) {
      if (err instanceof PhotoError && !err.retryable) {
        return await setAside(photo, ctx.mapping.badImage.action, err.code, err.message, ctx, studentKey);
      }
      throw err;
    }
    failpoint('after-download');

    let key: StudentKey = studentKey;
    if (ctx.mapping.studentKey.lookup) {
      let found: StudentKey | null;
      try {
        found = await ctx.limits.write(() => ctx.writer.lookupKey(studentKey!));
      } catch (err) {
        if (err instanceof PhotoError && !err.retryable) return await setAside(photo, ctx.mapping.unmatched.action, err.code, withHint(err.message, ctx), ctx, studentKey);
        throw err;
      }
      if (found === null) {
        return await setAside(photo, ctx.mapping.unmatched.action, 'no-student', withHint(`Photo ${photo.id}: no student found by the lookup query for key "${studentKey}".`, ctx), ctx, studentKey);
      }
      key = found;
    }
    if (ctx.mapping.target.keyType === 'integer') {
      if (!/^-?\d+$/.test(String(key).trim())) {
        return await setAside(photo, ctx.mapping.unmatched.action, 'key-not-integer', withHint(`Photo ${photo.id}: student key "${String(key)}" is not a whole number, but ${ctx.mapping.target.keyColumn} holds numbers.`, ctx), ctx, studentKey);
      }
      key = Number(String(key).trim());
    }
    studentKey = String(key);

    const columns = resolveColumns(ctx.mapping.target.columns, {
      photo,
      studentKey: key,
      contentType: image.contentType,
      byteLength: image.bytes.length,
      sha256: image.sha256,
      now: new Date(),
    });
    if (ctx.dryRun) return { kind: 'would-store', acknowledged: false, studentKey, reason: `would write ${image.bytes.length} bytes to ${ctx.mapping.target.table} for ${studentKey} and mark ${ctx.mapping.markAs}` };

    const request: StoreRequest = {
      photoId: photo.id,
      version,
      studentKey: key,
      photoDate: normalizeDate(photo.dateCreated),
      bytes: image.bytes,
      sha256: image.sha256,
      contentType: image.contentType,
      columns,
      runId: ctx.runId,
    };
    const result = await ctx.limits.write(() => ctx.writer.store(request, withCommitFailpoint(ctx.hooks)));
    if (result.kind === 'no-student-row') {
      return await setAside(photo, ctx.mapping.unmatched.action, 'no-student', withHint(`Photo ${photo.id}: no row in ${ctx.mapping.target.table} with ${ctx.mapping.target.keyColumn} = "${studentKey}" (write mode is update).`, ctx), ctx, studentKey);
    }
    failpoint('after-commit');
    log.info({ studentKey, outcome: result.kind, bytes: image.bytes.length }, result.kind === 'stored' ? 'photo stored' : `photo ${result.kind}`);
    return await acknowledge(photo, { kind: result.kind, acknowledged: false, studentKey, ...(result.kind === 'superseded' ? { reason: `a newer photo (${result.byPhotoId}) of the same student is already stored` } : {}) }, ctx);
  } catch (err) {
    if (isConnectionError(err)) ctx.onDatabaseDown(err);
    const code = err instanceof PhotoError ? err.code : isConnectionError(err) ? 'db-unreachable' : (err as { name?: string }).name === 'CloudCardError' ? 'cloudcard-error' : 'error';
    const reason = `Photo ${photo.id}: ${(err as Error).message}`;
    log.warn({ err, code, studentKey }, 'photo left for the next run');
    return { kind: 'left', acknowledged: false, code, reason, ...(studentKey ? { studentKey } : {}) };
  }
}

function withHint(reason: string, ctx: PhotoContext): string {
  const hint = ctx.mapping.unmatched.reason;
  return hint ? `${reason} ${hint}` : reason;
}

/** After COMMIT: tell CloudCard, then note it in the ledger. A failure here leaves the photo committed but unacknowledged, which the next run reconciles. */
async function acknowledge(photo: Photo, outcome: PhotoOutcome, ctx: PhotoContext): Promise<PhotoOutcome> {
  const version = photo.version ?? 0;
  const log = ctx.logger;
  let result: Awaited<ReturnType<CloudCardClient['setStatus']>>;
  try {
    result = await ctx.client.setStatus({ id: photo.id, version: photo.version }, ctx.mapping.markAs);
  } catch (err) {
    // Stored and committed, but CloudCard could not be told: still a stored photo (never written again),
    // acknowledged by the next run's reconcile.
    const reason = `Photo ${photo.id} is stored, but marking it ${ctx.mapping.markAs} failed: ${(err as Error).message}; the next run acknowledges it.`;
    log.warn({ code: 'ack-failed' }, reason);
    return { ...outcome, acknowledged: false, code: 'ack-failed', reason };
  }
  if (result.kind === 'ok') {
    failpoint('during-ack');
    ctx.acks.add(photo.id, version);
    return { ...outcome, acknowledged: true };
  }
  if (result.kind === 'conflict') {
    // Someone changed the photo since we listed it. If it already has our status (a retried PUT whose
    // first answer was lost), we are done; otherwise leave it: the next run sees the new version.
    const current = await ctx.client.getPhoto(photo.id);
    if (current?.status === ctx.mapping.markAs) {
      ctx.acks.add(photo.id, version);
      return { ...outcome, acknowledged: true };
    }
    const reason = `Photo ${photo.id} changed in CloudCard while it was being stored (now ${current?.status ?? 'deleted'}, version ${current?.version ?? '-'}); not acknowledged, the next run decides again.`;
    log.warn({ code: 'ack-conflict' }, reason);
    return { ...outcome, acknowledged: false, code: 'ack-conflict', reason };
  }
  const reason = `Photo ${photo.id} was deleted in CloudCard after it was stored; nothing to acknowledge.`;
  log.warn({ code: 'ack-not-found' }, reason);
  return { ...outcome, acknowledged: false, code: 'ack-not-found', reason };
}

/** Unmatched or unusable photos: leave them, or put them ON_HOLD / FAILED with the specific reason, as the mapping says. */
async function setAside(
  photo: Photo,
  action: 'leave' | 'hold' | 'fail',
  code: string,
  reason: string,
  ctx: PhotoContext,
  studentKey?: string,
): Promise<PhotoOutcome> {
  const log = ctx.logger;
  const base = { code, reason, ...(studentKey ? { studentKey } : {}) };
  const kind = UNMATCHED_CODES.has(code) ? 'unmatched' : 'left';
  if (action === 'leave' || ctx.dryRun) {
    log.warn({ code, studentKey }, reason);
    return { kind, acknowledged: false, ...base, ...(ctx.dryRun && action !== 'leave' ? { reason: `${reason} (dry run: would mark ${action === 'hold' ? 'ON_HOLD' : 'FAILED'})` } : {}) };
  }
  const status = action === 'hold' ? 'ON_HOLD' : 'FAILED';
  const result = await ctx.client.setStatus({ id: photo.id, version: photo.version }, status, reason);
  if (result.kind !== 'ok') {
    log.warn({ code, studentKey, status }, `${reason} Could not mark it ${status} (${result.kind}); left for the next run.`);
    return { kind: 'left', acknowledged: false, ...base };
  }
  log.warn({ code, studentKey, status }, reason);
  return { kind: action === 'hold' ? 'held' : 'failed', acknowledged: false, ...base };
}
