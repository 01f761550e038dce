/**
 * Where photos come from. Polling (the Photo List) and a status queue both hand the run a stream of
 * work items; the run settles each one when its photo is done, so the source can do its own bookkeeping
 * (adjust paging for photos that left the list, delete a queue message only after COMMIT).
 */
import type { Photo } from '../cloudcard/types.js';

export type OutcomeKind =
  /** Written to the target table in a committed transaction. */
  | 'stored'
  /** Already in the ledger from an earlier run or delivery: not written again. */
  | 'already-stored'
  /** A newer photo of the same student is already stored: recorded, not written. */
  | 'superseded'
  /** No student record: left as it was (mapping says leave). */
  | 'unmatched'
  /** Put ON_HOLD with a reason (unmatched or bad image, per the mapping). */
  | 'held'
  /** Marked FAILED with a reason (unmatched or bad image, per the mapping). */
  | 'failed'
  /** Something went wrong that may pass (network, database, a changed photo): left for the next run. */
  | 'left'
  /** Dry run: would have been written and acknowledged. */
  | 'would-store';

export interface PhotoOutcome {
  kind: OutcomeKind;
  /** CloudCard was told (status PUT accepted): the photo has left the status it was listed under. */
  acknowledged: boolean;
  studentKey?: string;
  /** Human-readable reason for anything but a clean store. */
  reason?: string;
  /** Machine-readable reason code (e.g. 'no-identifier', 'not-an-image', 'db-error'). */
  code?: string;
}

export interface WorkItem {
  photo: Photo;
  /** Called exactly once, after the photo's outcome is final (after COMMIT and acknowledgement). */
  settle(outcome: PhotoOutcome): Promise<void>;
}

export interface PhotoSource {
  /** Yields work until the source is drained (polling) or the signal aborts (queue). */
  items(signal: AbortSignal): AsyncIterable<WorkItem>;
  /**
   * At-least-once delivery (a status queue): the same photo often arrives again after it was stored, so
   * it is worth a ledger look-up before downloading it again.
   */
  readonly redelivers?: boolean;
  /** How many photos the source knows are waiting, when it can tell (for the progress bar). */
  expectedTotal?(): number | undefined;
}

/** Whether an outcome means the photo is no longer under the status it was listed with. */
export function leftTheList(outcome: PhotoOutcome): boolean {
  return outcome.acknowledged || outcome.kind === 'held' || outcome.kind === 'failed';
}
