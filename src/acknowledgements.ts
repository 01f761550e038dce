/**
 * Records acknowledgements (CloudCard accepted the status PUT) in the ledger, in batches: one UPDATE per
 * photo would double the database round trips of a run. Losing a batch in a crash is harmless: the next
 * run's reconcile finds the ledger rows unacknowledged, sees CloudCard already has them marked, and
 * records it then.
 */
import type { Logger } from './log.js';
import type { PhotoWriter } from './target/writer.js';

const BATCH = 200;
const MAX_DELAY_MS = 1000;

export class AcknowledgementLog {
  private pending: Array<{ photoId: number; version: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly writer: PhotoWriter,
    private readonly logger: Logger,
  ) {}

  add(photoId: number, version: number): void {
    this.pending.push({ photoId, version });
    if (this.pending.length >= BATCH) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), MAX_DELAY_MS);
  }

  /** Writes whatever is pending; resolves when every batch started so far has been written (or has failed and been logged). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length) {
      this.flushing = this.flushing.then(() =>
        this.writer.markAcknowledged(batch).catch((err: unknown) => {
          this.logger.warn({ err, photos: batch.length }, 'could not record acknowledgements in the ledger; the next run will reconcile them');
        }),
      );
    }
    return this.flushing;
  }
}
