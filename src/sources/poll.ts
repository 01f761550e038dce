/**
 * The polling source: every photo of each configured status, from the Photo List.
 *
 * Paging by offset over a list that shrinks while we work (we mark photos DOWNLOADED) would skip photos.
 * So the next page's offset counts only the photos ahead of the cursor that are still in the list
 * (passed over minus those that left or are about to), and each status is swept again from offset 0
 * until a sweep finds nothing new: whatever an estimate got wrong (a photo that failed and stayed, the
 * card office changing things meanwhile) is picked up by the next sweep, and a photo already seen in this
 * run (same id and version) is never handed out twice. Only one page of photo objects is held at a time.
 */
import type { CloudCardClient } from '../cloudcard/client.js';
import type { Logger } from '../log.js';
import { leftTheList, type PhotoOutcome, type PhotoSource, type WorkItem } from './source.js';

/** A backstop against a list that keeps changing under us; each sweep normally finds nothing new after the first two. */
const MAX_SWEEPS = 10;

export interface PollSourceOptions {
  client: CloudCardClient;
  statuses: readonly string[];
  pageSize: number;
  logger: Logger;
}

export class PollSource implements PhotoSource {
  private readonly seen = new Set<string>();
  private total = 0;

  constructor(private readonly opts: PollSourceOptions) {}

  expectedTotal(): number | undefined {
    return this.total || undefined;
  }

  async *items(signal: AbortSignal): AsyncIterable<WorkItem> {
    for (const status of this.opts.statuses) {
      for (let sweep = 1; sweep <= MAX_SWEEPS && !signal.aborted; sweep++) {
        const foundNew = yield* this.sweep(status, sweep, signal);
        if (!foundNew) break;
        if (sweep === MAX_SWEEPS) {
          this.opts.logger.warn({ status, sweeps: sweep }, 'photo list still changing after the last sweep; the next run continues');
        }
      }
    }
  }

  /** One pass over the list of `status`; returns whether it found any photo not seen before in this run. */
  private async *sweep(status: string, sweep: number, signal: AbortSignal): AsyncGenerator<WorkItem, boolean> {
    const { client, pageSize, logger } = this.opts;
    // Counters for this sweep, used to place the next page: see the comment at the top of the file.
    let passed = 0;
    let gone = 0;
    let inFlight = 0;
    let foundNew = false;
    let offset = 0;
    for (;;) {
      if (signal.aborted) return foundNew;
      const page = await client.listPhotos(status, offset, pageSize);
      logger.debug({ status, sweep, offset, count: page.length }, 'listed photos');
      for (const photo of page) {
        passed++;
        const key = `${photo.id}:${photo.version ?? 0}`;
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        foundNew = true;
        if (sweep === 1) this.total++;
        inFlight++;
        yield {
          photo,
          settle: async (outcome: PhotoOutcome) => {
            inFlight--;
            if (leftTheList(outcome)) gone++;
          },
        };
        if (signal.aborted) return foundNew;
      }
      if (page.length < pageSize) return foundNew;
      // Photos in flight are counted as gone: most will be; one that stays is caught by the next sweep.
      offset = Math.max(0, passed - gone - inFlight);
    }
  }
}
