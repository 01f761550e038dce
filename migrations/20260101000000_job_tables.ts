/**
 * The job's own tables: the ledger (what was stored, and whether CloudCard was told), the per-student row that
 * serialises writers of the same student, run history, per-photo events, and the SQLite run lock.
 *
 * Portable on purpose: no `text` on Oracle except through knex (→ CLOB), index and constraint names ≤ 30
 * characters for old Oracle versions, knex `timestamp` (→ datetime2 on SQL Server).
 */
import type { Knex } from 'knex';
import { JOB_TABLES, jobSchemaOf } from '../src/target/job-tables.js';

const COUNTERS = ['found', 'stored', 'already_stored', 'superseded', 'acknowledged', 'unmatched', 'held', 'failed', 'left'] as const;

export async function up(knex: Knex): Promise<void> {
  const schema = () => knex.schema.withSchema(jobSchemaOf(knex) as string);

  await schema().createTable(JOB_TABLES.ledger, (t) => {
    t.bigInteger('photo_id').notNullable();
    t.integer('version').notNullable();
    t.string('student_key', 255).notNullable();
    t.string('photo_date', 32).notNullable();
    t.integer('byte_length').notNullable();
    t.specificType('sha256', 'char(64)').notNullable();
    t.string('outcome', 16).notNullable();
    t.timestamp('committed_at').notNullable();
    t.timestamp('acknowledged_at').nullable();
    t.string('run_id', 36).notNullable();
    t.primary(['photo_id', 'version'], 'cc_ledger_pk');
    t.index(['student_key'], 'cc_ledger_student_ix');
    t.index(['acknowledged_at'], 'cc_ledger_ack_ix');
  });

  await schema().createTable(JOB_TABLES.studentPhoto, (t) => {
    t.string('student_key', 255).notNullable();
    // Null until the first photo is stored: the row is created first so there is something to lock.
    t.bigInteger('photo_id').nullable();
    t.integer('version').nullable();
    t.string('photo_date', 32).nullable();
    t.timestamp('updated_at').notNullable();
    t.primary(['student_key'], 'cc_student_photo_pk');
  });

  await schema().createTable(JOB_TABLES.runs, (t) => {
    t.string('id', 36).notNullable();
    t.timestamp('started_at').notNullable();
    t.timestamp('ended_at').nullable();
    t.string('trigger', 16).notNullable();
    t.string('status', 16).notNullable();
    for (const c of COUNTERS) t.integer(c).notNullable().defaultTo(0);
    t.text('error_summary').nullable();
    t.string('host', 255).nullable();
    t.primary(['id'], 'cc_runs_pk');
  });

  await schema().createTable(JOB_TABLES.photoEvents, (t) => {
    t.increments('id', { primaryKey: true });
    t.string('run_id', 36).notNullable();
    t.bigInteger('photo_id').notNullable();
    t.integer('version').notNullable();
    t.timestamp('at').notNullable();
    t.string('event', 32).notNullable();
    t.string('student_key', 255).nullable();
    t.string('detail', 1000).nullable();
    t.index(['photo_id'], 'cc_events_photo_ix');
    t.index(['student_key'], 'cc_events_student_ix');
  });

  await schema().createTable(JOB_TABLES.lock, (t) => {
    t.string('name', 64).notNullable();
    t.string('holder', 255).nullable();
    t.timestamp('acquired_at').nullable();
    t.timestamp('heartbeat_at').nullable();
    t.primary(['name'], 'cc_lock_pk');
  });
}

export async function down(knex: Knex): Promise<void> {
  const schema = () => knex.schema.withSchema(jobSchemaOf(knex) as string);
  for (const name of [JOB_TABLES.lock, JOB_TABLES.photoEvents, JOB_TABLES.runs, JOB_TABLES.studentPhoto, JOB_TABLES.ledger]) {
    await schema().dropTableIfExists(name);
  }
}
