/**
 * One run: drain the source through resolve → write → acknowledge, many photos side by side as a
 * pipeline. At most `concurrency` photos download at once and at most `concurrency` use the database at
 * once (p-limit each, see PhotoContext.limits); the status PUT, which holds neither an image nor a
 * connection, runs outside both. Overall no more than 2 × concurrency photos are in flight, so memory is
 * bounded by the concurrency, not by the backlog, while downloads, writes and PUTs overlap (bench/).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Knex } from 'knex';
import pLimit from 'p-limit';
import { AcknowledgementLog } from './acknowledgements.js';
import type { CloudCardClient } from './cloudcard/client.js';
import type { Mapping } from './config/mapping.js';
import { DatabaseError } from './errors.js';
import { withLogContext, type Logger } from './log.js';
import { processPhoto, UNMATCHED_CODES } from './process-photo.js';
import { reconcileUnacknowledged } from './reconcile.js';
import { emptyCounts, RunHistory, type RunCounts } from './run-history.js';
import { PollSource } from './sources/poll.js';
import type { OutcomeKind, PhotoOutcome, PhotoSource } from './sources/source.js';
import type { StoreHooks } from './target/types.js';
import type { PhotoWriter } from './target/writer.js';

export interface SyncDeps {
  client: CloudCardClient;
  knex: Knex;
  writer: PhotoWriter;
  mapping: Mapping;
  jobSchema?: string | undefined;
  concurrency: number;
  pageSize: number;
  logger: Logger;
}

export interface RunOptions {
  trigger?: string;
  dryRun?: boolean;
  /** Aborting stops taking new photos; those in flight finish (commit and acknowledge, or roll back). */
  signal?: AbortSignal;
  /** Defaults to polling the Photo List for the mapping's statuses. */
  source?: PhotoSource;
  onProgress?: (progress: { done: number; total: number | undefined; counts: RunCounts }) => void;
  /** Test hooks inside the write transaction. */
  hooks?: StoreHooks;
  /**
   * False when the job's own tables do not exist yet: only a dry run may go on without them (it must not
   * create them), and then it treats every photo as not yet stored.
   */
  ledgerExists?: boolean;
}

export interface RunSummary {
  runId: string;
  dryRun: boolean;
  counts: RunCounts;
  /** Committed by an earlier run and acknowledged by this one. */
  reconciled: number;
  durationMs: number;
  /** Photos that did not end stored-and-acknowledged, with the reason (capped, for the report). */
  problems: Array<{ photoId: number; kind: OutcomeKind; code?: string | undefined; reason?: string | undefined }>;
  stopped: boolean;
  /** As recorded in run history: ok, partial (some photo not stored and marked), or stopped. */
  status: 'ok' | 'partial' | 'stopped';
}

const COUNT_BY_KIND: Record<OutcomeKind, keyof RunCounts> = {
  stored: 'stored',
  'already-stored': 'alreadyStored',
  superseded: 'superseded',
  unmatched: 'unmatched',
  held: 'held',
  failed: 'failed',
  left: 'left',
  'would-store': 'wouldStore',
};
const MAX_PROBLEMS_REPORTED = 200;

export async function runSync(deps: SyncDeps, opts: RunOptions = {}): Promise<RunSummary> {
  const runId = randomUUID();
  return withLogContext({ runId }, () => run(deps, opts, runId));
}

async function run(deps: SyncDeps, opts: RunOptions, runId: string): Promise<RunSummary> {
  const started = Date.now();
  const dryRun = opts.dryRun ?? false;
  const logger = deps.logger;
  const counts = emptyCounts();
  const problems: RunSummary['problems'] = [];
  // Dry runs write nothing, not even their own history.
  const history = dryRun ? undefined : new RunHistory(deps.knex, deps.jobSchema, runId, logger);
  const acks = new AcknowledgementLog(deps.writer, logger);

  const databaseDown = new AbortController();
  let databaseError: unknown;
  const signal = opts.signal ? AbortSignal.any([opts.signal, databaseDown.signal]) : databaseDown.signal;

  await history?.start(opts.trigger ?? 'manual', os.hostname());
  logger.info({ trigger: opts.trigger ?? 'manual', dryRun, concurrency: deps.concurrency }, 'run started');
  let reconciled = 0;
  let status: 'ok' | 'partial' | 'failed' | 'stopped' = 'ok';
  let errorSummary: string | undefined;
  try {
    await deps.client.login();
    if (!dryRun) reconciled = await reconcileUnacknowledged({ client: deps.client, writer: deps.writer, markAs: deps.mapping.markAs, logger });
    counts.acknowledged += reconciled;

    const source: PhotoSource = opts.source ?? new PollSource({ client: deps.client, statuses: deps.mapping.statuses, pageSize: deps.pageSize, logger });
    const ctx = {
      client: deps.client,
      writer: deps.writer,
      mapping: deps.mapping,
      runId,
      dryRun,
      ledgerExists: opts.ledgerExists ?? true,
      precheckLedger: source.redelivers ?? false,
      acks,
      logger,
      hooks: opts.hooks,
      limits: { download: pLimit(deps.concurrency), write: pLimit(deps.concurrency) },
      onDatabaseDown: (err: unknown) => {
        if (!databaseError) {
          databaseError = err;
          logger.error({ err }, 'lost the database connection: taking no new photos');
          databaseDown.abort();
        }
      },
    };
    let done = 0;
    // Back-pressure: pull the next photo from the source only when there is room in flight, so the source
    // (and its page of photo objects) is consumed no faster than photos are finished.
    const maxInFlight = 2 * deps.concurrency;
    let wakeUp: (() => void) | undefined;
    const tasks = new Set<Promise<void>>();
    for await (const item of source.items(signal)) {
      counts.found++;
      const task = (async () => {
        const outcome = await withLogContext({ photoId: item.photo.id, version: item.photo.version ?? 0 }, () => processPhoto(item.photo, ctx));
        record(item.photo.id, item.photo.version ?? 0, outcome);
        try {
          await item.settle(outcome);
        } catch (err) {
          // The photo's own outcome stands; a source that could not settle (e.g. delete a queue message)
          // sees the photo again and the ledger makes that harmless.
          logger.warn({ err, photoId: item.photo.id }, 'could not settle the photo with its source');
        }
        done++;
        opts.onProgress?.({ done, total: source.expectedTotal?.(), counts });
      })();
      tasks.add(task);
      void task.finally(() => {
        tasks.delete(task);
        wakeUp?.();
      });
      while (tasks.size >= maxInFlight && !signal.aborted) {
        await new Promise<void>((resolve) => (wakeUp = resolve));
      }
      if (signal.aborted) break;
    }
    await Promise.all(tasks);
    if (databaseError) throw new DatabaseError(`Lost the database connection during the run: ${(databaseError as Error).message}`, { cause: databaseError });
    if (opts.signal?.aborted) status = 'stopped';
    else if (counts.left + counts.failed + counts.held > 0 || problems.length > 0) status = 'partial';
  } catch (err) {
    status = 'failed';
    errorSummary = (err as Error).message;
    throw err;
  } finally {
    await acks.flush();
    await history?.finish(status, counts, errorSummary ?? summarizeProblems(problems)).catch((err: unknown) => logger.warn({ err }, 'could not record the run in run history'));
    await deps.client.logout();
    logger.info({ status, ...counts, reconciled, durationMs: Date.now() - started }, 'run finished');
  }
  // A failed run has thrown by now; what is left is one of these.
  const finished = status as RunSummary['status'];
  return { runId, dryRun, counts, reconciled, durationMs: Date.now() - started, problems, stopped: finished === 'stopped', status: finished };

  function record(photoId: number, version: number, outcome: PhotoOutcome): void {
    counts[COUNT_BY_KIND[outcome.kind]]++;
    // An unmatched photo put ON_HOLD or FAILED counts both as unmatched and as held/failed.
    if (outcome.kind !== 'unmatched' && outcome.code && UNMATCHED_CODES.has(outcome.code)) counts.unmatched++;
    if (outcome.acknowledged) counts.acknowledged++;
    const clean = (outcome.kind === 'stored' || outcome.kind === 'already-stored' || outcome.kind === 'superseded') && outcome.acknowledged;
    if (!clean && problems.length < MAX_PROBLEMS_REPORTED) problems.push({ photoId, kind: outcome.kind, code: outcome.code, reason: outcome.reason });
    history?.event({
      photoId,
      version,
      event: outcome.acknowledged ? `${outcome.kind}+acknowledged` : outcome.kind,
      studentKey: outcome.studentKey,
      detail: outcome.reason,
    });
  }
}

function summarizeProblems(problems: RunSummary['problems']): string | undefined {
  if (!problems.length) return undefined;
  const byCode = new Map<string, number>();
  for (const p of problems) byCode.set(p.code ?? p.kind, (byCode.get(p.code ?? p.kind) ?? 0) + 1);
  return [...byCode].map(([code, n]) => `${code}: ${n}`).join(', ');
}
