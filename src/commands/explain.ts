/**
 * `cloudcard-sync explain <photo id | student key>`: what happened to a photo, from the job's own tables:
 * when runs found it, which student key it matched (or why not), when it was stored and acknowledged, and
 * whether a newer photo of the same student replaced it. Answers "why is Jane's photo not on her card?".
 */
import type { Command } from 'commander';
import type { Knex } from 'knex';
import { connectDatabase } from '../job.js';
import { JOB_TABLES, jobTable } from '../target/job-tables.js';
import { settingsFrom, withDatabaseOptions, type CommonFlags } from './common.js';
import { lowerKeys } from '../target/rows.js';
import { isoTime } from './status.js';

export interface PhotoEventRecord {
  at: string | null;
  runId: string;
  trigger: string | null;
  version: number;
  /** The run's outcome for the photo (stored, held, ...), `+acknowledged` when CloudCard was told. */
  event: string;
  studentKey: string | null;
  detail: string | null;
}

export interface LedgerRecord {
  version: number;
  studentKey: string;
  outcome: string;
  committedAt: string | null;
  acknowledgedAt: string | null;
  runId: string;
}

export interface StudentRecord {
  studentKey: string;
  /** The photo now in the target table for this student (null: none stored yet). */
  currentPhotoId: number | null;
  currentVersion: number | null;
  photoDate: string | null;
  updatedAt: string | null;
}

export interface PhotoStory {
  photoId: number;
  firstSeen: { at: string | null; runId: string } | null;
  events: PhotoEventRecord[];
  ledger: LedgerRecord[];
  student: StudentRecord | null;
  /** A newer photo of the same student that is now the stored one. */
  supersededBy: number | null;
  /** One sentence: where the photo stands now. */
  verdict: string;
}

export interface Explanation {
  query: string;
  /** Students whose key equals the query. */
  students: StudentRecord[];
  photos: PhotoStory[];
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

export async function explain(knex: Knex, jobSchema: string | undefined, query: string): Promise<Explanation> {
  const t = (name: string) => jobTable(name, jobSchema);
  const key = query.trim();
  const photoIds = new Set<number>();
  // A student key may look like a number too, so a numeric query is tried both ways.
  if (/^\d{1,15}$/.test(key)) {
    const id = Number(key);
    const [seen, stored] = await Promise.all([
      knex(t(JOB_TABLES.photoEvents)).where('photo_id', id).first('photo_id'),
      knex(t(JOB_TABLES.ledger)).where('photo_id', id).first('photo_id'),
    ]);
    if (seen || stored) photoIds.add(id);
  }
  const students = ((await knex(t(JOB_TABLES.studentPhoto)).where('student_key', key)) as Array<Record<string, unknown>>).map(toStudent);
  const byKey = (await Promise.all([
    knex(t(JOB_TABLES.photoEvents)).where('student_key', key).distinct('photo_id'),
    knex(t(JOB_TABLES.ledger)).where('student_key', key).distinct('photo_id'),
  ])) as Array<Array<Record<string, unknown>>>;
  for (const rows of byKey) for (const r of rows) photoIds.add(Number(lowerKeys(r).photo_id));
  for (const s of students) if (s.currentPhotoId !== null) photoIds.add(s.currentPhotoId);

  const photos: PhotoStory[] = [];
  for (const id of [...photoIds].sort((a, b) => a - b)) photos.push(await photoStory(knex, t, id));
  return { query: key, students, photos };
}

async function photoStory(knex: Knex, t: (name: string) => string, photoId: number): Promise<PhotoStory> {
  const events = ((await knex(`${t(JOB_TABLES.photoEvents)} as e`)
    .leftJoin(`${t(JOB_TABLES.runs)} as r`, 'r.id', 'e.run_id')
    .where('e.photo_id', photoId)
    .orderBy('e.id')
    .select('e.run_id', 'e.version', 'e.at', 'e.event', 'e.student_key', 'e.detail', 'r.trigger')) as Array<Record<string, unknown>>).map((raw) => {
    const r = lowerKeys(raw);
    return {
      at: isoTime(r.at),
      runId: String(r.run_id),
      trigger: str(r.trigger),
      version: Number(r.version),
      event: String(r.event),
      studentKey: str(r.student_key),
      detail: str(r.detail),
    };
  });
  const ledger = ((await knex(t(JOB_TABLES.ledger)).where('photo_id', photoId).orderBy('version')) as Array<Record<string, unknown>>).map((raw) => {
    const r = lowerKeys(raw);
    return {
      version: Number(r.version),
      studentKey: String(r.student_key),
      outcome: String(r.outcome),
      committedAt: isoTime(r.committed_at),
      acknowledgedAt: isoTime(r.acknowledged_at),
      runId: String(r.run_id),
    };
  });
  const studentKey = ledger.at(-1)?.studentKey ?? [...events].reverse().find((e) => e.studentKey)?.studentKey ?? null;
  const studentRow = studentKey ? ((await knex(t(JOB_TABLES.studentPhoto)).where('student_key', studentKey).first()) as Record<string, unknown> | undefined) : undefined;
  const student = studentRow ? toStudent(studentRow) : null;
  const supersededBy = ledger.length && student?.currentPhotoId != null && student.currentPhotoId !== photoId ? student.currentPhotoId : null;
  const first = events[0];
  return {
    photoId,
    firstSeen: first ? { at: first.at, runId: first.runId } : null,
    events,
    ledger,
    student,
    supersededBy,
    verdict: verdictFor(photoId, events, ledger, supersededBy),
  };
}

function verdictFor(photoId: number, events: PhotoEventRecord[], ledger: LedgerRecord[], supersededBy: number | null): string {
  const last = ledger.at(-1);
  if (last) {
    if (last.outcome === 'superseded') {
      return `Photo ${photoId} was not written: a newer photo${supersededBy !== null ? ` (${supersededBy})` : ''} of student ${last.studentKey} was already stored.${last.acknowledgedAt ? ` CloudCard was told at ${last.acknowledgedAt}.` : ''}`;
    }
    const replaced = supersededBy !== null ? ` Since then, newer photo ${supersededBy} replaced it for this student.` : '';
    if (last.acknowledgedAt) {
      return `Photo ${photoId} (version ${last.version}) was stored for student ${last.studentKey} at ${last.committedAt ?? '?'} and acknowledged in CloudCard at ${last.acknowledgedAt}.${replaced}`;
    }
    return `Photo ${photoId} (version ${last.version}) was stored for student ${last.studentKey} at ${last.committedAt ?? '?'} but CloudCard has not been told yet; the next run acknowledges it.${replaced}`;
  }
  const e = events.at(-1);
  if (!e) return `Photo ${photoId} was never seen by this job: check in CloudCard that it is approved and in a status the mapping lists (e.g. READY_FOR_DOWNLOAD).`;
  const why = e.detail ? ` Reason: ${e.detail}` : '';
  switch (e.event) {
    case 'held':
      return `Photo ${photoId} was put ON_HOLD in CloudCard at ${e.at ?? '?'} and not stored.${why}`;
    case 'failed':
      return `Photo ${photoId} was marked FAILED in CloudCard at ${e.at ?? '?'} and not stored.${why}`;
    case 'unmatched':
      return `Photo ${photoId} matched no student when last seen (${e.at ?? '?'}) and was left in CloudCard; a later run tries again.${why}`;
    case 'left':
      return `Photo ${photoId} could not be stored when last seen (${e.at ?? '?'}) and was left for the next run.${why}`;
    default:
      return `Photo ${photoId}: last event "${e.event}" at ${e.at ?? '?'}.${why}`;
  }
}

function toStudent(raw: Record<string, unknown>): StudentRecord {
  const r = lowerKeys(raw);
  return {
    studentKey: String(r.student_key),
    currentPhotoId: r.photo_id == null ? null : Number(r.photo_id),
    currentVersion: r.version == null ? null : Number(r.version),
    photoDate: str(r.photo_date),
    updatedAt: isoTime(r.updated_at),
  };
}

export function formatExplanation(x: Explanation): string {
  if (!x.photos.length && !x.students.length) {
    return `Nothing recorded for "${x.query}": no photo with that id and no student with that key in the job's history.\nIf the photo is in CloudCard, check its status (the mapping's statuses are the ones fetched) and run \`cloudcard-sync status\`.`;
  }
  const lines: string[] = [];
  for (const s of x.students) {
    lines.push(`Student ${s.studentKey}: ${s.currentPhotoId !== null ? `current photo ${s.currentPhotoId} (version ${s.currentVersion ?? '?'}, taken ${s.photoDate ?? '?'}), written ${s.updatedAt ?? '?'}` : 'no photo stored yet'}`);
  }
  for (const p of x.photos) {
    if (lines.length) lines.push('');
    lines.push(`Photo ${p.photoId}`, `  ${p.verdict}`);
    if (p.events.length) {
      lines.push('  History:');
      for (const e of p.events) {
        lines.push(`    ${e.at ?? '?'}  run ${e.runId}${e.trigger ? ` (${e.trigger})` : ''}  v${e.version}  ${e.event}${e.studentKey ? `  student ${e.studentKey}` : ''}`);
        if (e.detail) lines.push(`      ${e.detail}`);
      }
    }
    for (const l of p.ledger) {
      lines.push(`  Ledger: v${l.version} ${l.outcome} for ${l.studentKey} at ${l.committedAt ?? '?'} (run ${l.runId}); acknowledged ${l.acknowledgedAt ?? 'not yet'}`);
    }
  }
  return lines.join('\n');
}

export function registerExplain(program: Command): void {
  withDatabaseOptions(
    program
      .command('explain')
      .description('tell what happened to a photo: found when, matched to which student or why not, stored and acknowledged when')
      .argument('<photo-id-or-student-key>', 'a CloudCard photo id, or a student key as stored in your database')
      .option('--json', 'machine-readable output'),
  ).action(async (query: string, flags: CommonFlags & { json?: boolean }) => {
    const settings = settingsFrom(flags);
    const knex = await connectDatabase(settings, 2);
    try {
      const x = await explain(knex, settings.jobSchema, query);
      process.stdout.write(`${flags.json ? JSON.stringify(x, null, 2) : formatExplanation(x)}\n`);
    } finally {
      await knex.destroy();
    }
  });
}
