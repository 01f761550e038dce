/**
 * Invariant 3's second half: work that committed but was never acknowledged (a crash between COMMIT and
 * the status PUT, or a PUT whose answer was lost) is acknowledged by the next run without writing again.
 * Photos still listed are caught by the ledger check in processPhoto too; this pass catches the ones
 * that are no longer listed (CloudCard has them DOWNLOADED already, or someone moved them on).
 */
import type { CloudCardClient } from './cloudcard/client.js';
import type { Logger } from './log.js';
import type { PhotoWriter } from './target/writer.js';

const BATCH = 500;

export async function reconcileUnacknowledged(opts: {
  client: CloudCardClient;
  writer: PhotoWriter;
  markAs: string;
  logger: Logger;
}): Promise<number> {
  const { client, writer, markAs, logger } = opts;
  let reconciled = 0;
  for (;;) {
    const rows = await writer.unacknowledged(BATCH);
    if (!rows.length) return reconciled;
    const done: Array<{ photoId: number; version: number }> = [];
    for (const row of rows) {
      const photoId = Number(row.photo_id);
      const version = Number(row.version);
      const log = logger.child({ photoId, version });
      try {
        const result = await client.setStatus({ id: photoId, version }, markAs);
        if (result.kind === 'ok') {
          log.info('acknowledged a photo stored by an earlier run');
        } else {
          const current = await client.getPhoto(photoId);
          if (!current) log.info('photo stored by an earlier run no longer exists in CloudCard; nothing to acknowledge');
          else if (current.status === markAs) log.info(`photo stored by an earlier run is already ${markAs} in CloudCard`);
          else {
            // Changed since we stored it (re-approved with a new image, discarded...): that version is
            // CloudCard's to decide; a new version is listed and stored on its own.
            log.warn({ status: current.status, currentVersion: current.version }, 'photo changed in CloudCard after it was stored; the stored version is not acknowledged');
          }
        }
        done.push({ photoId, version });
      } catch (err) {
        // CloudCard unreachable: leave the rest for the next run rather than fail this one.
        log.warn({ err }, 'could not acknowledge a photo stored by an earlier run; will try again next run');
        await writer.markAcknowledged(done);
        return reconciled + done.length;
      }
    }
    await writer.markAcknowledged(done);
    reconciled += done.length;
    if (rows.length < BATCH) return reconciled;
  }
}
