/**
 * The polling source: every photo of each configured status, from the Photo List.
 *
 * Paging by offset over a list that shrinks while we work (we mark photos DOWNLOADED) would skip photos.
 * So the next page's offset is the number of photos up to our cursor that are still in the list: the
 * distinct photos this sweep has passed, minus those that left or are in flight (most in-flight photos
 * are about to leave). Counting an in-flight photo as gone can only make the offset too small, never too
 * large, so a page may repeat a few photos (dropped: each id and version is handed out once per run) but
 * never jumps over one. After a sweep, once every photo handed out has settled, the status is swept again
 * from offset 0 until a sweep finds nothing new: that catches photos the card office approved meanwhile.
 * Only one page of photo objects is held at a time.
 */
import type { CloudCardClient } from '../cloudcard/client.js';
import type { Logger } from '../log.js';
import { leftTheList, type PhotoOutcome, type PhotoSource, type WorkItem } from './source.js';

/** A backstop against a list that keeps growing under us; the next run continues where this one stops. */
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
  private inFlight = 0;
  private onSettled: (() => void) | undefined;

  constructor(private readonly opts: PollSourceOptions) {}

  expectedTotal(): number | undefined {
    return this.total || undefined;
  }

  async *items(signal: AbortSignal): AsyncIterable<WorkItem> {
    for (const status of this.opts.statuses) {
      for (let sweep = 1; !signal.aborted; sweep++) {
        if (sweep > MAX_SWEEPS) {
          this.opts.logger.warn({ status, sweeps: MAX_SWEEPS }, 'photo list still growing after the last sweep; the next run continues');
          break;
        }
        const foundNew = yield* this.sweep(status, sweep, signal);
        if (!foundNew) break;
        await this.allSettled();
      }
    }
  }

  /** Resolves when every photo handed out so far has settled, so the list no longer moves under us. */
  private async allSettled(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => (this.onSettled = resolve));
  }

  /** One pass over the list of `status`; returns whether it found any photo not handed out before in this run. */
  private async *sweep(status: string, sweep: number, signal: AbortSignal): AsyncGenerator<WorkItem, boolean> {
    const { client, pageSize, logger } = this.opts;
    const passed = new Set<string>();
    let gone = 0;
    let inFlight = 0;
    let foundNew = false;
    let offset = 0;
    for (;;) {
      if (signal.aborted) return foundNew;
      const page = await client.listPhotos(status, offset, pageSize);
      logger.debug({ status, sweep, offset, count: page.length }, 'listed photos');
      let newOnPage = 0;
      for (const photo of page) {
        const key = `${photo.id}:${photo.version ?? 0}`;
        passed.add(key);
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        foundNew = true;
        newOnPage++;
        if (sweep === 1) this.total++;
        inFlight++;
        this.inFlight++;
        yield {
          photo,
          settle: async (outcome: PhotoOutcome) => {
            inFlight--;
            this.inFlight--;
            if (leftTheList(outcome)) gone++;
            this.onSettled?.();
          },
        };
        if (signal.aborted) return foundNew;
      }
      if (page.length < pageSize) return foundNew;
      // A full page of photos already handed out: they are still in flight, so wait for them to settle
      // instead of asking for the same page again.
      if (newOnPage === 0) await this.allSettled();
      offset = Math.max(0, passed.size - gone - inFlight);
    }
  }
}
