/**
 * Soak: 2,000 photos with a seeded random mix of every fault the simulator can produce, several runs until
 * drained, then the final state checked photo by photo against the simulator's record (support/photo-audit.ts).
 * Prints the table (fault, times injected, photos lost, written twice, acknowledged but not stored) and writes
 * it as JSON to a temp file whose path is printed, so it can be quoted.
 *
 * Runs on SQLite always, and on PostgreSQL too when TEST_PG_URL is set.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CloudCardClient } from '../src/cloudcard/client.js';
import type { FaultRule } from '../src/simulator/index.js';
import type { PhotoCorruption, Simulator } from '../src/simulator/index.js';
import { seededRandom } from '../src/simulator/random.js';
import { auditPhotos, type AuditReport, type ExpectedSetAside } from './support/photo-audit.js';
import { startHarness, type Harness } from './support/sync-harness.js';

const PHOTOS = 2_000;
const SEED = 20_240_905;
const MAX_RUNS = 6;

/** Per-photo faults: a fault rule aimed at one photo's bytes or status PUT, bad data, or a change mid-flight. */
type PhotoFault =
  | { label: string; rule: Omit<FaultRule, 'match'>; on: 'bytes' | 'PUT' }
  | { label: string; corruption: PhotoCorruption; expect?: ExpectedSetAside }
  | { label: 'stale version on PUT (replaced after COMMIT)'; stale: true };

const PHOTO_FAULTS: Array<[weight: number, fault: PhotoFault]> = [
  [3, { label: '500 on bytes', rule: { kind: 'status500', times: 2 }, on: 'bytes' }],
  [3, { label: '502 on bytes', rule: { kind: 'status502' }, on: 'bytes' }],
  [3, { label: '503 on PUT', rule: { kind: 'status503', times: 2 }, on: 'PUT' }],
  [3, { label: '429 Retry-After on bytes', rule: { kind: 'status429', retryAfterSeconds: 0 }, on: 'bytes' }],
  [3, { label: 'reset mid-body (bytes)', rule: { kind: 'reset' }, on: 'bytes' }],
  [2, { label: 'reset after PUT took effect', rule: { kind: 'reset' }, on: 'PUT' }],
  [3, { label: 'short body (bytes)', rule: { kind: 'shortBody' }, on: 'bytes' }],
  [1, { label: 'slow past the timeout (bytes)', rule: { kind: 'slow', delayMs: 600 }, on: 'bytes' }],
  [2, { label: 'slow past the timeout (PUT)', rule: { kind: 'slow', delayMs: 600 }, on: 'PUT' }],
  [3, { label: '401 on PUT', rule: { kind: 'status401' }, on: 'PUT' }],
  [3, { label: '404 on bytes (left, next run)', rule: { kind: 'status404' }, on: 'bytes' }],
  [3, { label: 'PUT committed, response lost', rule: { kind: 'lostResponse' }, on: 'PUT' }],
  [2, { label: 'stale version on PUT (replaced after COMMIT)', stale: true }],
  [1, { label: 'null identifier', corruption: 'nullIdentifier', expect: { status: 'ON_HOLD', reason: /has no person\.identifier/ } }],
  [1, { label: 'blank identifier', corruption: 'blankIdentifier', expect: { status: 'ON_HOLD', reason: /has no person\.identifier/ } }],
  [1, { label: 'unknown student', corruption: 'unknownStudent', expect: { status: 'ON_HOLD', reason: /no student found by the lookup query/ } }],
  [1, { label: 'non-image bytes', corruption: 'notImage', expect: { status: 'FAILED', reason: /not a JPEG or PNG image/ } }],
  [1, { label: 'truncated JPEG', corruption: 'truncatedJpeg', expect: { status: 'FAILED', reason: /JPEG is cut off/ } }],
  [1, { label: 'oversize image', corruption: 'oversize', expect: { status: 'FAILED', reason: /larger than the 200000-byte limit/ } }],
  [2, { label: 'quotes and unicode in custom fields', corruption: 'quotesAndUnicode' }],
  [47, { label: 'none', corruption: undefined as never }],
];

/** The card office replaces the image of chosen photos right before our status PUT: a real stale version. */
class ReplacingClient extends CloudCardClient {
  constructor(
    opts: ConstructorParameters<typeof CloudCardClient>[0],
    private readonly sim: Simulator,
    private readonly toReplace: Set<number>,
  ) {
    super(opts);
  }

  override async setStatus(photo: { id: number; version?: number }, status: string, reason?: string) {
    if (status === 'DOWNLOADED' && this.toReplace.delete(photo.id)) this.sim.replaceImage(photo.id);
    return super.setStatus(photo, status, reason);
  }
}

interface Row {
  fault: string;
  injected: number;
  photos: number;
  lost: number;
  writtenTwice: number;
  acknowledgedNotStored: number;
}

const open: Harness[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

describe.each(['sqlite', 'postgres'] as const)('soak (%s)', (dialect) => {
  it(`${PHOTOS} photos, a seeded mix of faults, several runs: nothing lost, nothing doubled`, async (ctx) => {
    const h = await startHarness({
      dialect,
      sim: { photoCount: PHOTOS, imageBytes: 4_000, seed: 7 },
      client: { timeoutMs: 250, maxRetries: 6, retryBaseMs: 2 },
      concurrency: 8,
      pageSize: 500,
    });
    if (typeof h === 'string') {
      console.log(h);
      ctx.skip(h);
      return;
    }
    open.push(h);
    const started = Date.now();

    // ---- plan the faults, at a fixed seed -------------------------------------------------------------
    const random = seededRandom(SEED);
    const totalWeight = PHOTO_FAULTS.reduce((s, [w]) => s + w, 0);
    const faultOf = new Map<number, string>();
    const expectSetAside = new Map<number, ExpectedSetAside>();
    const toReplace = new Set<number>();
    const injectedByLabel = new Map<string, number>();
    const count = (label: string, n = 1) => injectedByLabel.set(label, (injectedByLabel.get(label) ?? 0) + n);
    const ruleLabel = new Map<string, string>(); // "kind on photoId" → label, to attribute what the simulator injected
    for (const photo of h.sim.photos()) {
      let pick = random() * totalWeight;
      const [, fault] = PHOTO_FAULTS.find(([w]) => (pick -= w) < 0) ?? PHOTO_FAULTS[PHOTO_FAULTS.length - 1]!;
      faultOf.set(photo.id, fault.label);
      if ('rule' in fault) {
        h.sim.faults.add({ ...fault.rule, match: fault.on === 'bytes' ? { path: '/storage/', photoId: photo.id } : { method: 'PUT', photoId: photo.id } });
        ruleLabel.set(`${fault.rule.kind} ${photo.id}`, fault.label);
      } else if ('stale' in fault) {
        toReplace.add(photo.id);
      } else if (fault.corruption) {
        h.sim.corruptPhoto(photo.id, fault.corruption, fault.corruption === 'oversize' ? { sizeBytes: 300_000 } : {});
        count(fault.label);
        if (fault.expect) expectSetAside.set(photo.id, fault.expect);
      }
    }
    // Run-wide faults: on the photo list, and the session revoked every 400 acknowledgements.
    h.sim.faults.add({ kind: 'malformedJson', match: { method: 'GET', path: /^\/api\/photo$/ }, times: 2 });
    h.sim.faults.add({ kind: 'status500', match: { method: 'GET', path: /^\/api\/photo$/ }, times: 2 });
    h.sim.faults.add({ kind: 'shortBody', match: { method: 'GET', path: /^\/api\/photo$/ }, times: 1 });
    let acknowledged = 0;
    let revoked = 0;
    h.sim.onStatusChange((p) => {
      if (p.status === 'DOWNLOADED' && ++acknowledged % 400 === 0) {
        h.sim.revokeSessions();
        revoked++;
      }
    });
    await h.seedStudents();

    // ---- run until drained --------------------------------------------------------------------------
    const runs: Array<{ found: number; stored: number; acknowledged: number; left: number; reconciled: number }> = [];
    for (let i = 0; i < MAX_RUNS; i++) {
      const client = new ReplacingClient(h.clientOptions, h.sim, toReplace);
      const s = await h.run({ client });
      runs.push({ found: s.counts.found, stored: s.counts.stored, acknowledged: s.counts.acknowledged, left: s.counts.left, reconciled: s.reconciled });
      const drained = s.counts.found === 0 && s.reconciled === 0;
      if (drained) break;
    }

    // ---- the table ------------------------------------------------------------------------------------
    for (const f of h.sim.faults.injected()) {
      const id = /\/api\/photos?\/(\d+)$/.exec(f.path)?.[1] ?? photoIdOfStorage(h.sim, f.path);
      const label = id ? ruleLabel.get(`${f.kind} ${id}`) : undefined;
      count(label ?? `${f.kind} on the photo list`);
    }
    const replacedCount = h.sim.photos().filter((p) => p.statusHistory.some((e) => e.reason === 'image replaced')).length;
    count('stale version on PUT (replaced after COMMIT)', replacedCount);
    count('401 mid-run (sessions revoked)', revoked);

    const report = await auditPhotos({ sim: h.sim, knex: h.knex, photoLog: h.tables.photoLog, jobSchema: h.schema, expectSetAside });
    const labels = [...new Set([...PHOTO_FAULTS.map(([, f]) => f.label), ...injectedByLabel.keys()])];
    const rows: Row[] = labels.map((label) => {
      const photos = new Set([...faultOf].filter(([, l]) => l === label).map(([id]) => id));
      const hit = (ids: number[]) => ids.filter((id) => photos.has(id)).length;
      return {
        fault: label,
        injected: label === 'none' ? 0 : injectedByLabel.get(label) ?? 0,
        photos: photos.size,
        lost: hit(report.lost),
        writtenTwice: hit(report.writtenTwice),
        acknowledgedNotStored: hit(report.acknowledgedNotStored),
      };
    });
    const totals = { lost: report.lost.length, writtenTwice: report.writtenTwice.length, acknowledgedNotStored: report.acknowledgedNotStored.length };
    const file = path.join(tmpdir(), `cloudcard-soak-${dialect}.json`);
    const result = { dialect, photos: PHOTOS, seed: SEED, runs, durationMs: Date.now() - started, totals, audit: summarize(report), table: rows };
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(formatTable(dialect, rows, totals, runs.length, Date.now() - started));
    console.log(`soak table as JSON: ${file}`);

    // ---- the promise ----------------------------------------------------------------------------------
    expect(report.lost).toEqual([]);
    expect(report.writtenTwice).toEqual([]);
    expect(report.acknowledgedNotStored).toEqual([]);
    expect(report.wrongBytes).toEqual([]);
    expect(report.wrongState).toEqual([]);
    expect(report.ledgerDisagrees).toEqual([]);
    expect(report.downloaded + report.setAside).toBe(PHOTOS);
    // Every kind of fault was actually exercised, and the mix left work for more than one run.
    for (const row of rows) if (row.fault !== 'none') expect(row.injected, row.fault).toBeGreaterThan(0);
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(toReplace.size).toBe(0);
  }, 120_000);
});

function photoIdOfStorage(sim: Simulator, p: string): string | undefined {
  if (!p.startsWith('/storage/')) return undefined;
  const publicKeyAndExt = p.slice('/storage/'.length);
  // Storage names are <publicKey>.<ext>; old keys of replaced photos are not current, but rules fire before a replace.
  const photo = sim.photos().find((ph) => `${ph.publicKey}.${ph.ext}` === publicKeyAndExt);
  return photo ? String(photo.id) : undefined;
}

function summarize(r: AuditReport) {
  return {
    photos: r.photos,
    downloaded: r.downloaded,
    setAside: r.setAside,
    lost: r.lost.length,
    writtenTwice: r.writtenTwice.length,
    acknowledgedNotStored: r.acknowledgedNotStored.length,
    wrongBytes: r.wrongBytes.length,
    wrongState: r.wrongState.length,
    ledgerDisagrees: r.ledgerDisagrees.length,
  };
}

function formatTable(dialect: string, rows: Row[], totals: Record<string, number>, runs: number, ms: number): string {
  const head = ['fault', 'injected', 'photos', 'lost', 'written twice', 'acked, not stored'];
  const body = rows.map((r) => [r.fault, r.injected, r.photos, r.lost, r.writtenTwice, r.acknowledgedNotStored].map(String));
  body.push(['TOTAL', '', String(PHOTOS), String(totals.lost), String(totals.writtenTwice), String(totals.acknowledgedNotStored)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [`soak on ${dialect}: ${PHOTOS} photos, seed ${SEED}, ${runs} runs, ${(ms / 1000).toFixed(1)} s`, line(head), ...body.map(line)].join('\n');
}
