/**
 * Runs the job's migrations (migrations/*.ts, compiled to dist/migrations/*.js) from code, for
 * `cloudcard-sync migrate`, the run's start-up check and the tests. knexfile.ts uses the same settings, so
 * the knex CLI and this module always agree on the migrations table and schema.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';
import { checkJobSchema } from './job-tables.js';
import { dialectName } from './connection.js';
import { waitForRunLock } from './run-lock.js';

/** Kept apart from any knex_migrations table the campus database may already have. */
export const MIGRATIONS_TABLE = 'cloudcard_migrations';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Running from source (tsx, vitest) we load the .ts migrations; from dist, the compiled .js ones. */
const runningFromSource = import.meta.url.endsWith('.ts');
const extension = runningFromSource ? '.ts' : '.js';

/** migrations/ sits two levels up from src/target/ both in the source tree and in dist/. */
export function migrationsDirectory(): string {
  const dir = path.resolve(here, '..', '..', 'migrations');
  if (!existsSync(dir)) throw new Error(`Migrations directory not found at ${dir}`);
  return dir;
}

/**
 * Loads migration modules with our own import(), not knex's: knex's loader cannot import .ts files under
 * vitest, and this keeps one code path for source and dist.
 */
class DirectoryMigrationSource implements Knex.MigrationSource<string> {
  constructor(private readonly dir: string) {}

  async getMigrations(): Promise<string[]> {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(extension) && !f.endsWith('.d.ts'))
      .sort();
  }

  getMigrationName(file: string): string {
    // Record the name without its extension, so source and dist runs see the same history.
    return file.slice(0, -extension.length);
  }

  async getMigration(file: string): Promise<Knex.Migration> {
    return (await import(pathToFileURL(path.join(this.dir, file)).href)) as Knex.Migration;
  }
}

/** The migrator settings shared by this module and knexfile.ts. */
export function migratorConfig(jobSchema?: string): Knex.MigratorConfig {
  return {
    migrationSource: new DirectoryMigrationSource(migrationsDirectory()),
    tableName: MIGRATIONS_TABLE,
    schemaName: jobSchema,
  };
}

/** A knex whose migrations see the job schema (through userParams, read by jobSchemaOf()). */
function withSchema(knex: Knex, jobSchema: string | undefined): Knex {
  return knex.withUserParams({ ...knex.userParams, jobSchema });
}

/**
 * Creates the job schema if the database lets us. Oracle schemas are users, created by a DBA, so there we only
 * use what exists.
 */
async function ensureSchema(knex: Knex, jobSchema: string): Promise<void> {
  switch (dialectName(knex)) {
    case 'postgres':
      await knex.raw('create schema if not exists ??', [jobSchema]);
      return;
    case 'mysql':
      // In MySQL/MariaDB a schema is a database.
      await knex.raw('create database if not exists ?? character set utf8mb4', [jobSchema]);
      return;
    case 'mssql':
      await knex.raw("if schema_id(?) is null exec('create schema ' + quotename(?))", [jobSchema, jobSchema]);
      return;
    default:
      return;
  }
}

function resolveSchema(knex: Knex, jobSchema: string | undefined): string | undefined {
  return checkJobSchema(String(knex.client.config.client), jobSchema);
}

/**
 * Two instances started at once against a fresh database both try to create knex's bookkeeping tables (and
 * the schema); one loses with "already exists", or finds the other holding knex's migration lock. Both mean
 * "someone else is migrating right now": wait a moment and try again, and the next attempt finds the work done.
 */
const CONCURRENT_MIGRATION = /already exists|already locked|duplicate key value|ER_TABLE_EXISTS_ERROR|ORA-00955|There is already an object named/i;
/** How long to wait for another instance's migrations (MariaDB's DDL on a busy server takes seconds). */
const MIGRATION_WAIT_MS = 120_000;

export async function migrateLatest(knex: Knex, jobSchema?: string): Promise<string[]> {
  const schema = resolveSchema(knex, jobSchema);
  const deadline = Date.now() + MIGRATION_WAIT_MS;
  // Where the server has session locks, instances take turns before knex even looks at its tables (on
  // MariaDB, knex's own lock-table dance between four instances could stall for a minute). Oracle and SQLite
  // keep their run lock in a job table that may not exist yet: there the retries below do the work.
  const turn = SESSION_LOCK_DIALECTS.has(dialectName(knex)) ? await waitForRunLock(knex, 'migrate', schema, MIGRATION_WAIT_MS) : null;
  try {
    return await migrateWithRetries(knex, schema, deadline);
  } finally {
    await turn?.release();
  }
}

const SESSION_LOCK_DIALECTS = new Set(['postgres', 'mysql', 'mssql']);

async function migrateWithRetries(knex: Knex, schema: string | undefined, deadline: number): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (schema) await ensureSchema(knex, schema);
      const [, applied] = (await withSchema(knex, schema).migrate.latest(migratorConfig(schema))) as [number, string[]];
      return applied;
    } catch (err) {
      if (Date.now() > deadline || !CONCURRENT_MIGRATION.test(String((err as Error)?.message))) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * attempt) + Math.random() * 200));
    }
  }
}

export async function migrateRollbackAll(knex: Knex, jobSchema?: string): Promise<string[]> {
  const schema = resolveSchema(knex, jobSchema);
  const [, undone] = (await withSchema(knex, schema).migrate.rollback(migratorConfig(schema), true)) as [number, string[]];
  return undone;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

export async function migrationStatus(knex: Knex, jobSchema?: string): Promise<MigrationStatus> {
  const schema = resolveSchema(knex, jobSchema);
  const [done, pending] = (await withSchema(knex, schema).migrate.list(migratorConfig(schema))) as [
    Array<{ name: string } | string>,
    Array<{ file: string } | string>,
  ];
  const name = (m: { name: string } | { file: string } | string): string =>
    typeof m === 'string' ? m : 'name' in m ? m.name : m.file;
  return { applied: done.map(name), pending: pending.map((m) => name(m).replace(/\.(ts|js)$/, '')) };
}
