/**
 * Crash points, a testing aid: the crash tests start the real CLI with
 *
 *   CLOUDCARD_SYNC_FAILPOINTS=after-download:3,before-commit:2,after-commit:5,during-ack:7
 *
 * meaning "SIGKILL this process the 3rd time any photo reaches after-download", and so on. SIGKILL, not an
 * exception, because a crash (power loss, OOM killer) runs no finally blocks, flushes no buffers and sends no
 * ROLLBACK: that is what the crash-safety promise is about, so that is what the tests must produce.
 *
 * The points, in the order a photo reaches them (see process-photo.ts):
 * - after-download: the bytes are in memory, nothing written yet;
 * - before-commit:  inside the write transaction, every statement done, COMMIT not yet sent;
 * - after-commit:   committed, CloudCard not yet told;
 * - during-ack:     CloudCard accepted the status PUT, the ledger has not recorded the acknowledgement.
 *
 * Inert when the variable is unset or empty (production): failpoint() is then one Map lookup.
 */
import type { StoreHooks } from './target/types.js';

export const FAILPOINT_ENV = 'CLOUDCARD_SYNC_FAILPOINTS';
export const FAILPOINT_NAMES = ['after-download', 'before-commit', 'after-commit', 'during-ack'] as const;
export type FailpointName = (typeof FAILPOINT_NAMES)[number];

/** Point name → the hit on which to crash; parsed once from the environment. */
const armed = parseFailpoints(process.env[FAILPOINT_ENV]);
const hits = new Map<FailpointName, number>();

/** Parses "name:N,name:N". A typo must not silently disarm a crash test, so anything unknown throws. */
export function parseFailpoints(spec: string | undefined): Map<FailpointName, number> {
  const out = new Map<FailpointName, number>();
  if (!spec || spec.trim() === '') return out;
  for (const part of spec.split(',')) {
    const [name, n] = part.trim().split(':');
    if (!(FAILPOINT_NAMES as readonly string[]).includes(name ?? '') || !/^\d+$/.test(n ?? '') || Number(n) < 1) {
      throw new Error(`${FAILPOINT_ENV}: "${part.trim()}" is not name:N with N ≥ 1 and name one of ${FAILPOINT_NAMES.join(', ')}`);
    }
    out.set(name as FailpointName, Number(n));
  }
  return out;
}

/** Counts a hit of `name` and kills the process on the armed hit. */
export function failpoint(name: FailpointName): void {
  const at = armed.get(name);
  if (at === undefined) return;
  const hit = (hits.get(name) ?? 0) + 1;
  hits.set(name, hit);
  if (hit === at) {
    process.stderr.write(`cloudcard-sync: failpoint ${name}:${at} reached, killing the process (testing aid)\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/** The store hooks with the before-commit point added; the same object back when that point is not armed. */
export function withCommitFailpoint(hooks: StoreHooks | undefined): StoreHooks | undefined {
  if (!armed.has('before-commit')) return hooks;
  return {
    afterWrite: async () => {
      await hooks?.afterWrite?.();
      failpoint('before-commit');
    },
  };
}
