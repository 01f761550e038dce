/**
 * `cloudcard-sync status`: the last runs, and the photos that still need something: committed but not yet
 * acknowledged in CloudCard, or last seen held, unmatched, failed or left (with the reason recorded then).
 * Reads the job's own tables only; needs the database, not CloudCard.
 */
import type { Command } from 'commander';
import type { Knex } from 'knex';
import { ConfigError } from '../errors.js';
import { connectDatabase } from '../job.js';
import { JOB_TABLES, jobTable } from '../target/job-tables.js';
import { lowerKeys } from '../target/rows.js';
import { settingsFrom, withDatabaseOptions, type CommonFlags } from './common.js';

export interface RunRecord {
  id: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  trigger: string;
  status: string;
  host: string | null;
  counts: Record<(typeof COUNTERS)[number], number>;
  errorSummary: string | null;
}

export interface UnacknowledgedPhoto {
  photoId: number;
  version: number;
  studentKey: string;
  outcome: string;
  committedAt: string | null;
  runId: string;
}

export interface HeldPhoto {
  photoId: number;
  version: number;
  /** The outcome of the last run that saw the photo: held, unmatched, failed or left. */
  event: string;
  studentKey: string | null;
  at: string | null;
  runId: string;
  reason: string | null;
}

export interface StatusReport {
  runs: RunRecord[];
  unacknowledged: UnacknowledgedPhoto[];
  needsAttention: HeldPhoto[];
}

const COUNTERS = ['found', 'stored', 'already_stored', 'superseded', 'acknowledged', 'unmatched', 'held', 'failed', 'left'] as const;
/** Outcomes that leave a photo without a stored copy: someone may have to act (or the next run retries). */
export const NOT_STORED_EVENTS = ['held', 'unmatched', 'failed', 'left'];

/** Timestamps come back as Date (pg, mysql, mssql, oracle), epoch milliseconds or ISO strings (SQLite). */
export function isoTime(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v))) return new Date(Number(v)).toISOString();
  const d = new Date(String(v));
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export function toRunRecord(raw: Record<string, unknown>): RunRecord {
  const r = lowerKeys(raw);
  const startedAt = isoTime(r.started_at);
  const endedAt = isoTime(r.ended_at);
  const counts = Object.fromEntries(COUNTERS.map((c) => [c, Number(r[c] ?? 0)])) as RunRecord['counts'];
  return {
    id: String(r.id),
    startedAt,
    endedAt,
    durationMs: startedAt && endedAt ? Date.parse(endedAt) - Date.parse(startedAt) : null,
    trigger: String(r.trigger),
    status: String(r.status),
    host: str(r.host),
    counts,
    errorSummary: str(r.error_summary),
  };
}

export async function loadStatus(knex: Knex, jobSchema: string | undefined, opts: { runs?: number; limit?: number } = {}): Promise<StatusReport> {
  const t = (name: string) => jobTable(name, jobSchema);
  const limit = opts.limit ?? 100;
  const runs = (await knex(t(JOB_TABLES.runs)).orderBy('started_at', 'desc').limit(opts.runs ?? 10)) as Array<Record<string, unknown>>;
  const unacked = (await knex(t(JOB_TABLES.ledger))
    .whereNull('acknowledged_at')
    .orderBy([{ column: 'committed_at' }, { column: 'photo_id' }])
    .limit(limit)) as Array<Record<string, unknown>>;
  const events = t(JOB_TABLES.photoEvents);
  // The last event of each photo (highest id), kept only when it left the photo without a stored copy.
  const held = (await knex(`${events} as e`)
    .select('e.*')
    .whereIn('e.event', NOT_STORED_EVENTS)
    .where('e.id', knex(`${events} as e2`).max('e2.id').whereRaw('?? = ??', ['e2.photo_id', 'e.photo_id']))
    .orderBy('e.id', 'desc')
    .limit(limit)) as Array<Record<string, unknown>>;
  return {
    runs: runs.map(toRunRecord),
    unacknowledged: unacked.map((raw) => {
      const r = lowerKeys(raw);
      return {
        photoId: Number(r.photo_id),
        version: Number(r.version),
        studentKey: String(r.student_key),
        outcome: String(r.outcome),
        committedAt: isoTime(r.committed_at),
        runId: String(r.run_id),
      };
    }),
    needsAttention: held.map((raw) => {
      const r = lowerKeys(raw);
      return {
        photoId: Number(r.photo_id),
        version: Number(r.version),
        event: String(r.event),
        studentKey: str(r.student_key),
        at: isoTime(r.at),
        runId: String(r.run_id),
        reason: str(r.detail),
      };
    }),
  };
}

function duration(ms: number | null): string {
  if (ms === null) return '-';
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  if (!report.runs.length) lines.push('No runs recorded yet.');
  else {
    lines.push(`Last ${report.runs.length} run${report.runs.length === 1 ? '' : 's'} (newest first):`);
    lines.push(`  ${'started'.padEnd(24)} ${'duration'.padEnd(10)} ${'trigger'.padEnd(9)} ${'status'.padEnd(8)} found stored ack unmatched held failed left`);
    for (const r of report.runs) {
      const c = r.counts;
      lines.push(
        `  ${(r.startedAt ?? '-').padEnd(24)} ${duration(r.durationMs).padEnd(10)} ${r.trigger.padEnd(9)} ${r.status.padEnd(8)} ` +
          `${String(c.found).padStart(5)} ${String(c.stored).padStart(6)} ${String(c.acknowledged).padStart(3)} ${String(c.unmatched).padStart(9)} ` +
          `${String(c.held).padStart(4)} ${String(c.failed).padStart(6)} ${String(c.left).padStart(4)}`,
      );
      if (r.errorSummary) lines.push(`    ${r.errorSummary}`);
    }
  }
  lines.push('');
  if (report.unacknowledged.length) {
    lines.push(`Stored but not yet acknowledged in CloudCard (${report.unacknowledged.length}; the next run acknowledges them):`);
    for (const p of report.unacknowledged) lines.push(`  photo ${p.photoId} v${p.version}  student ${p.studentKey}  ${p.outcome} ${p.committedAt ?? ''}  run ${p.runId}`);
  } else lines.push('Nothing stored and waiting to be acknowledged.');
  lines.push('');
  if (report.needsAttention.length) {
    lines.push(`Photos not stored when last seen (${report.needsAttention.length}):`);
    for (const p of report.needsAttention) {
      lines.push(`  photo ${p.photoId} v${p.version}  ${p.event}  student ${p.studentKey ?? '-'}  ${p.at ?? ''}  run ${p.runId}`);
      if (p.reason) lines.push(`    ${p.reason}`);
    }
    lines.push('', 'Run `cloudcard-sync explain <photo id | student key>` for the whole story of one photo.');
  } else lines.push('No photos held, unmatched or left.');
  return lines.join('\n');
}

export function registerStatus(program: Command): void {
  withDatabaseOptions(
    program
      .command('status')
      .description('show the last runs and the photos still pending or held (from the job tables)')
      .option('-n, --runs <n>', 'how many runs to show', '10')
      .option('--limit <n>', 'at most this many photos per list', '100')
      .option('--json', 'machine-readable output'),
  ).action(async (flags: CommonFlags & { runs: string; limit: string; json?: boolean }) => {
    const settings = settingsFrom(flags);
    const knex = await connectDatabase(settings, 2);
    try {
      const report = await loadStatus(knex, settings.jobSchema, { runs: positive(flags.runs, '--runs'), limit: positive(flags.limit, '--limit') });
      process.stdout.write(`${flags.json ? JSON.stringify(report, null, 2) : formatStatus(report)}\n`);
    } finally {
      await knex.destroy();
    }
  });
}

export function positive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${flag} must be a whole number of at least 1, got "${v}"`);
  return n;
}
