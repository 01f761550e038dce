/**
 * Run history and per-photo events in the job's own tables, so that `status` and `explain` can answer
 * "why is Jane's photo not on her card?" months later. Events are buffered and written in batches: a
 * row per photo per run is worth keeping, a round trip per photo is not.
 */
import type { Knex } from 'knex';
import type { Logger } from './log.js';

export interface RunCounts {
  found: number;
  stored: number;
  alreadyStored: number;
  superseded: number;
  acknowledged: number;
  unmatched: number;
  held: number;
  failed: number;
  left: number;
  wouldStore: number;
}

export function emptyCounts(): RunCounts {
  return { found: 0, stored: 0, alreadyStored: 0, superseded: 0, acknowledged: 0, unmatched: 0, held: 0, failed: 0, left: 0, wouldStore: 0 };
}

export interface PhotoEvent {
  photoId: number;
  version: number;
  event: string;
  studentKey?: string | undefined;
  detail?: string | undefined;
}

const EVENT_BATCH = 250;

/** SQLite (better-sqlite3) cannot bind a Date; every other driver wants one. */
export function dbNow(knex: Knex, at = new Date()): Date | string {
  return knex.client.config.client === 'better-sqlite3' ? at.toISOString() : at;
}

/**
 * Marks runs whose process ended without finishing them (killed, crashed, or past the stop timeout) as
 * `interrupted`, so `status` does not show them as running forever. Only safe while holding the run lock:
 * then no other locked run is under way. Queue consumers take no lock and are left alone.
 */
export async function closeAbandonedRuns(knex: Knex, jobSchema: string | undefined): Promise<number> {
  const runs = jobSchema ? knex('cloudcard_runs').withSchema(jobSchema) : knex('cloudcard_runs');
  return runs
    .where({ status: 'running' })
    .whereNot({ trigger: 'queue' })
    .update({ status: 'interrupted', ended_at: dbNow(knex), error_summary: 'the process ended before the run finished (killed, crashed, or past the stop timeout)' });
}

export class RunHistory {
  private events: Array<Record<string, unknown>> = [];
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly knex: Knex,
    private readonly jobSchema: string | undefined,
    private readonly runId: string,
    private readonly logger: Logger,
  ) {}

  private table(name: string): Knex.QueryBuilder {
    const qb = this.knex(name);
    return this.jobSchema ? qb.withSchema(this.jobSchema) : qb;
  }

  async start(trigger: string, host: string): Promise<void> {
    await this.table('cloudcard_runs').insert({ id: this.runId, started_at: dbNow(this.knex), trigger, status: 'running', host });
  }

  event(e: PhotoEvent): void {
    this.events.push({
      run_id: this.runId,
      photo_id: e.photoId,
      version: e.version,
      at: dbNow(this.knex),
      event: e.event,
      student_key: e.studentKey ?? null,
      detail: e.detail ? e.detail.slice(0, 1000) : null,
    });
    if (this.events.length >= EVENT_BATCH) void this.flush();
  }

  flush(): Promise<void> {
    const batch = this.events;
    this.events = [];
    if (batch.length) {
      this.writing = this.writing.then(() =>
        this.table('cloudcard_photo_events')
          .insert(batch)
          .then(() => undefined)
          .catch((err: unknown) => this.logger.warn({ err, events: batch.length }, 'could not record photo events in run history')),
      );
    }
    return this.writing;
  }

  async finish(status: 'ok' | 'partial' | 'failed' | 'stopped', counts: RunCounts, errorSummary?: string): Promise<void> {
    await this.flush();
    await this.table('cloudcard_runs')
      .where({ id: this.runId })
      .update({
        ended_at: dbNow(this.knex),
        status,
        found: counts.found,
        stored: counts.stored,
        already_stored: counts.alreadyStored,
        superseded: counts.superseded,
        acknowledged: counts.acknowledged,
        unmatched: counts.unmatched,
        held: counts.held,
        failed: counts.failed,
        left: counts.left,
        error_summary: errorSummary ? errorSummary.slice(0, 4000) : null,
      });
  }
}
