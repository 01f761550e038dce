/**
 * Names of the job's own tables. They are fixed and lower-case so they read the same in every dialect; knex
 * quotes them, so Oracle keeps them lower-case too. An optional schema (CLOUDCARD_SYNC_SCHEMA) holds them.
 */
import type { Knex } from 'knex';
import { ConfigError } from '../errors.js';

export const JOB_TABLES = {
  ledger: 'cloudcard_ledger',
  studentPhoto: 'cloudcard_student_photo',
  runs: 'cloudcard_runs',
  photoEvents: 'cloudcard_photo_events',
  lock: 'cloudcard_lock',
} as const;

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_$#]{0,127}$/;

/** Checks a job schema name against the dialect; returns it (or undefined for "the default schema"). */
export function checkJobSchema(client: string, jobSchema: string | undefined): string | undefined {
  if (jobSchema === undefined || jobSchema === '') return undefined;
  if (client === 'sqlite3' || client === 'better-sqlite3') {
    throw new ConfigError('CLOUDCARD_SYNC_SCHEMA cannot be used with SQLite: SQLite has no schemas (leave it unset).');
  }
  if (!SCHEMA_NAME.test(jobSchema)) {
    throw new ConfigError(`CLOUDCARD_SYNC_SCHEMA must be a plain SQL name (letters, digits, _ $ #), got "${jobSchema}"`);
  }
  return jobSchema;
}

/** The schema-qualified name of a job table, in the `schema.table` form knex quotes part by part. */
export function jobTable(name: string, jobSchema?: string): string {
  return jobSchema ? `${jobSchema}.${name}` : name;
}

/** The schema the migrations were asked to use: set by migrate.ts and knexfile.ts through knex userParams. */
export function jobSchemaOf(knex: Knex): string | undefined {
  const s = (knex.userParams as { jobSchema?: unknown } | undefined)?.jobSchema;
  return typeof s === 'string' && s !== '' ? s : undefined;
}
