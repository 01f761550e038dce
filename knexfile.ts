/**
 * For the knex CLI (`npm run knex -- migrate:latest`). The program itself connects through
 * src/target/connection.ts and migrates through src/target/migrate.ts; this file reuses both, so the two
 * always agree on driver settings, migrations table and schema.
 *
 *   DATABASE_URL            e.g. postgres://user:pass@host:5432/db (default sqlite:./cloudcard-sync.sqlite)
 *   CLOUDCARD_SYNC_SCHEMA   optional schema for the job's own tables (not for SQLite)
 */
import type { Knex } from 'knex';
import { knexConfigFromUrl } from './src/target/connection.js';
import { checkJobSchema } from './src/target/job-tables.js';
import { migratorConfig } from './src/target/migrate.js';

const url = process.env.DATABASE_URL ?? 'sqlite:./cloudcard-sync.sqlite';
const base = knexConfigFromUrl(url);
const jobSchema = checkJobSchema(String(base.client), process.env.CLOUDCARD_SYNC_SCHEMA);

// userParams is a knex config key its type definitions leave out.
const config = {
  ...base,
  // Migrations read the job schema from here (see jobSchemaOf in src/target/job-tables.ts).
  userParams: { jobSchema },
  migrations: migratorConfig(jobSchema),
} as Knex.Config;

export default config;
