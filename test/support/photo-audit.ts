/**
 * "Nothing lost, nothing doubled", checked photo by photo: the simulator's record (status, history, bytes)
 * against the target table and the ledger of a sync harness (see sync-harness.ts).
 *
 * For a photo the simulator has DOWNLOADED, the version that was acknowledged is the one just before the
 * DOWNLOADED entry in its history (a PUT bumps the version). That (photo id, version) must have exactly one
 * row in the target table with the simulator's bytes, and a ledger row that is stored and acknowledged.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { SimPhoto, Simulator } from '../../src/simulator/index.js';
import { JOB_TABLES, jobTable } from '../../src/target/job-tables.js';

export interface ExpectedSetAside {
  status: 'ON_HOLD' | 'FAILED' | 'READY_FOR_DOWNLOAD';
  /** Must match the reason CloudCard recorded (ON_HOLD / FAILED; a photo left READY carries none there). */
  reason?: RegExp;
}

export interface AuditReport {
  photos: number;
  downloaded: number;
  setAside: number;
  /** Expected stored, but not DOWNLOADED with its bytes in the table. */
  lost: number[];
  /** A (photo id, version) with more than one row in the target table. */
  writtenTwice: number[];
  /** DOWNLOADED in CloudCard, but no row in the target table for the acknowledged version. */
  acknowledgedNotStored: number[];
  /** A row whose bytes are not the simulator's bytes for that photo. */
  wrongBytes: number[];
  /** Set aside (or not) other than the test expected, or without the expected reason. */
  wrongState: string[];
  /** Ledger rows that disagree with the table or CloudCard: missing, unacknowledged, or without a table row. */
  ledgerDisagrees: string[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface TableRow {
  photoId: number;
  version: number;
  sha256: string;
}

/** The version the DOWNLOADED status was set against, or undefined if the photo never became DOWNLOADED. */
export function acknowledgedVersion(photo: SimPhoto): number | undefined {
  const entry = [...photo.statusHistory].reverse().find((h) => h.status === 'DOWNLOADED');
  return entry ? entry.version - 1 : undefined;
}

export async function auditPhotos(opts: {
  sim: Simulator;
  knex: Knex;
  photoLog: string;
  jobSchema: string | undefined;
  /** Photos that must end set aside (bad data); every other photo must end stored and DOWNLOADED. */
  expectSetAside?: ReadonlyMap<number, ExpectedSetAside>;
}): Promise<AuditReport> {
  const { sim, knex } = opts;
  const expectSetAside = opts.expectSetAside ?? new Map();
  const raw = (await knex(opts.photoLog).select('CLOUDCARD_PHOTO_ID', 'CLOUDCARD_VERSION', 'PHOTO')) as Array<Record<string, unknown>>;
  const rows = new Map<string, TableRow[]>();
  for (const r of raw) {
    const row = { photoId: Number(r.CLOUDCARD_PHOTO_ID), version: Number(r.CLOUDCARD_VERSION), sha256: sha(r.PHOTO as Buffer) };
    const k = `${row.photoId}:${row.version}`;
    rows.set(k, [...(rows.get(k) ?? []), row]);
  }
  const ledgerRows = (await knex(jobTable(JOB_TABLES.ledger, opts.jobSchema)).select('photo_id', 'version', 'outcome', 'acknowledged_at', 'sha256')) as Array<
    Record<string, unknown>
  >;
  const ledger = new Map(ledgerRows.map((l) => [`${Number(l.photo_id)}:${Number(l.version)}`, l]));

  const report: AuditReport = {
    photos: 0,
    downloaded: 0,
    setAside: 0,
    lost: [],
    writtenTwice: [],
    acknowledgedNotStored: [],
    wrongBytes: [],
    wrongState: [],
    ledgerDisagrees: [],
  };

  for (const photo of sim.photos()) {
    report.photos++;
    const expected = expectSetAside.get(photo.id);
    const ackVersion = acknowledgedVersion(photo);
    if (photo.status === 'DOWNLOADED' && ackVersion !== undefined) {
      report.downloaded++;
      if (expected) report.wrongState.push(`photo ${photo.id}: DOWNLOADED, expected ${expected.status}`);
      const key = `${photo.id}:${ackVersion}`;
      const stored = rows.get(key) ?? [];
      if (stored.length === 0) report.acknowledgedNotStored.push(photo.id);
      else if (stored.some((r) => r.sha256 !== sha(photo.bytes))) report.wrongBytes.push(photo.id);
      const l = ledger.get(key);
      if (!l) report.ledgerDisagrees.push(`photo ${photo.id} v${ackVersion}: DOWNLOADED but no ledger row`);
      else if (l.acknowledged_at == null) report.ledgerDisagrees.push(`photo ${photo.id} v${ackVersion}: DOWNLOADED but the ledger says unacknowledged`);
      continue;
    }
    if (!expected) {
      report.lost.push(photo.id);
      continue;
    }
    report.setAside++;
    if (photo.status !== expected.status) {
      report.wrongState.push(`photo ${photo.id}: ${photo.status}, expected ${expected.status}`);
    } else if (expected.reason && expected.status !== 'READY_FOR_DOWNLOAD') {
      const reason = photo.statusHistory.at(-1)?.reason ?? '';
      if (!expected.reason.test(reason)) report.wrongState.push(`photo ${photo.id}: reason "${reason}" does not match ${String(expected.reason)}`);
    }
    // Bad data is never stored, in any version.
    if ([...rows.keys()].some((k) => k.startsWith(`${photo.id}:`))) report.wrongState.push(`photo ${photo.id}: set aside but has rows in the table`);
  }

  for (const [key, list] of rows) {
    const [id] = key.split(':');
    if (list.length > 1) report.writtenTwice.push(Number(id));
    const l = ledger.get(key);
    if (!l) report.ledgerDisagrees.push(`${key}: in the table but not in the ledger`);
    else if (l.outcome !== 'stored') report.ledgerDisagrees.push(`${key}: in the table but the ledger says ${String(l.outcome)}`);
    else if (l.sha256 !== list[0]?.sha256) report.ledgerDisagrees.push(`${key}: the ledger's sha256 differs from the stored bytes`);
  }
  for (const [key, l] of ledger) {
    if (l.outcome === 'stored' && !rows.has(key)) report.ledgerDisagrees.push(`${key}: ledger says stored, no row in the table`);
    if (l.acknowledged_at == null) report.ledgerDisagrees.push(`${key}: committed but never acknowledged`);
  }
  return report;
}

/** The parts of a report that must be empty; handy as `expect(problems(report)).toEqual({})`. */
export function problems(report: AuditReport): Partial<AuditReport> {
  const out: Partial<AuditReport> = {};
  for (const k of ['lost', 'writtenTwice', 'acknowledgedNotStored', 'wrongBytes', 'wrongState', 'ledgerDisagrees'] as const) {
    if (report[k].length) (out as Record<string, unknown>)[k] = report[k];
  }
  return out;
}
