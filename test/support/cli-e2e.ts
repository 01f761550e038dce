/**
 * Campus-database fixtures for the CLI tests (schedule, status/explain, logs, dry run, exit codes, metrics):
 * a database seeded with the demo `students` table (SQLite in a temp dir, or a PostgreSQL schema of its own),
 * the demo mapping, and the environment a child process needs. The process helpers are in cli.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { seedDemoStudents } from '../../src/commands/demo.js';
import { openDatabase } from '../../src/target/connection.js';

import { ROOT } from './cli.js';

export const DEMO_MAPPING = path.join(ROOT, 'mappings', 'demo-sqlite.yaml');
export const PG_URL = process.env.TEST_PG_URL;

export interface CampusDb {
  kind: 'sqlite' | 'postgres';
  /** DATABASE_URL for the child process. */
  url: string;
  /** The test's own connection to the same database. */
  knex: Knex;
  close(): Promise<void>;
}

/** A SQLite campus database in a temp dir with the demo students for `photoCount` simulator photos. */
export async function sqliteCampus(photoCount: number): Promise<CampusDb> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cc-e2e-'));
  const url = `sqlite:${path.join(dir, 'campus.sqlite')}`;
  const knex = openDatabase(url);
  await seedDemoStudents(knex, photoCount);
  return {
    kind: 'sqlite',
    url,
    knex,
    async close() {
      await knex.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A PostgreSQL schema of its own (the server is shared with other test files), made the search path through
 * the URL so the child process puts both the students table and the job tables there. With `role`, the schema
 * belongs to a new role that has a password, and the URL logs in as that role.
 */
export async function postgresCampus(photoCount: number, opts: { role?: boolean } = {}): Promise<CampusDb | { skip: string }> {
  if (!PG_URL) return { skip: 'PostgreSQL e2e tests skipped: set TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test)' };
  const name = `cc_e2e_${randomBytes(4).toString('hex')}`;
  const admin = openDatabase(PG_URL, { poolMax: 2 });
  const base = new URL(PG_URL);
  let password: string | undefined;
  if (opts.role) {
    password = `pw-${randomBytes(12).toString('hex')}`;
    await admin.raw(`create role ?? login password '${password}'`, [name]);
    await admin.raw('create schema ?? authorization ??', [name, name]);
    base.username = name;
    base.password = password;
  } else {
    await admin.raw('create schema ??', [name]);
  }
  base.searchParams.set('options', `-c search_path=${name}`);
  const url = base.toString();
  const knex = openDatabase(url, { poolMax: 4 });
  await seedDemoStudents(knex, photoCount);
  return {
    kind: 'postgres',
    url,
    knex,
    async close() {
      await knex.destroy();
      await admin.raw('drop schema if exists ?? cascade', [name]);
      if (opts.role) await admin.raw('drop role if exists ??', [name]);
      await admin.destroy();
    },
  };
}

/** The environment a child needs to sync `sim` into `db` with the demo mapping. */
export function syncEnv(sim: { baseUrl: string; accessToken: string }, db: CampusDb, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CLOUDCARD_BASE_URL: sim.baseUrl,
    CLOUDCARD_ACCESS_TOKEN: sim.accessToken,
    DATABASE_URL: db.url,
    CLOUDCARD_SYNC_MAPPING: DEMO_MAPPING,
    ...extra,
  };
}

export async function countRows(knex: Knex, table: string): Promise<number> {
  const [row] = (await knex(table).count({ n: '*' })) as Array<{ n: number | string }>;
  return Number(row?.n ?? 0);
}
