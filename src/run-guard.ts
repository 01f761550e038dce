/**
 * What surrounds a run, for both `run` and `schedule`: the database run lock (one run at a time per
 * database, across processes and machines) and turning SIGTERM/SIGINT into a graceful stop.
 */
import type { Knex } from 'knex';
import { DatabaseError } from './errors.js';
import type { Logger } from './log.js';
import { closeAbandonedRuns } from './run-history.js';
import { acquireRunLock } from './target/run-lock.js';

/** One lock for every kind of run: a manual `run` and a scheduled tick must not overlap either. */
export const RUN_LOCK_NAME = 'sync';

export const LOCKED_MESSAGE = 'another instance is running against this database; not starting a run';

export type Guarded<T> = { locked: false; value: T } | { locked: true };

/**
 * Runs `fn` holding the run lock, or returns `{ locked: true }` at once when another process holds it.
 * The lock is released however `fn` ends; if the process dies instead, the database drops it with the session.
 */
export async function withRunLock<T>(knex: Knex, jobSchema: string | undefined, fn: () => Promise<T>): Promise<Guarded<T>> {
  const lock = await acquireRunLock(knex, RUN_LOCK_NAME, jobSchema ? { jobSchema } : {});
  if (!lock) return { locked: true };
  let value: T;
  try {
    await closeAbandonedRuns(knex, jobSchema);
    value = await fn();
  } catch (err) {
    // The run's own error is the one to report (e.g. DatabaseError, exit 4). Releasing on a connection that
    // died with the database fails too, but then the session, and the lock with it, is gone already.
    await lock.release().catch(() => undefined);
    throw err;
  }
  try {
    await lock.release();
  } catch (err) {
    throw new DatabaseError(`The run finished, but releasing the run lock failed: ${(err as Error).message}`, { cause: err });
  }
  return { locked: false, value };
}

export interface StopSignal {
  /** Aborted on the first SIGTERM or SIGINT. */
  signal: AbortSignal;
  /** Resolves with the signal's name once one arrives. */
  requested: Promise<NodeJS.Signals>;
  dispose(): void;
}

/**
 * The first SIGTERM/SIGINT aborts the returned signal: the run stops taking new photos and lets the ones in
 * flight commit (and be acknowledged) or roll back. A second one is logged and otherwise ignored, because
 * exiting then could leave a committed photo unacknowledged until the next run reconciles it; the stop
 * timeout bounds the wait instead.
 */
export function stopOnSignals(logger: Logger): StopSignal {
  const controller = new AbortController();
  let resolveRequested: (s: NodeJS.Signals) => void = () => undefined;
  const requested = new Promise<NodeJS.Signals>((resolve) => (resolveRequested = resolve));
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      logger.warn({ signal: sig }, 'already stopping; waiting for the photos in flight');
      return;
    }
    logger.info({ signal: sig }, 'stop requested: taking no new photos, finishing the ones in flight');
    controller.abort();
    resolveRequested(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    signal: controller.signal,
    requested,
    dispose() {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
