/**
 * End-to-end fixtures for the CLI tests (schedule, status/explain, logs, dry run, exit codes, metrics): the
 * built CLI started as a child process, a campus database seeded with the demo `students` table (SQLite in a
 * temp dir, or a PostgreSQL schema of its own), and the demo mapping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Knex } from 'knex';
import { seedDemoStudents } from '../../src/commands/demo.js';
import { openDatabase } from '../../src/target/connection.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
export const DEMO_MAPPING = path.join(ROOT, 'mappings', 'demo-sqlite.yaml');
export const PG_URL = process.env.TEST_PG_URL;

export function requireBuiltCli(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p .\` (npm test builds first)`);
}

export interface CliProcess {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  stdout(): string;
  /** Resolves once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until the output matches, or fails after timeoutMs with the output so far. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** JSON log lines (stdout lines that parse as objects). */
  jsonLines(): Array<Record<string, unknown>>;
}

export function startCli(args: string[], env: Record<string, string | undefined>): CliProcess {
  requireBuiltCli();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    // A clean environment: only what the test passes, plus PATH/HOME so node runs normally.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let all = '';
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (isOut: boolean) => (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    all += s;
    if (isOut) out += s;
    for (const w of waiters) w();
  };
  child.stdout?.on('data', onData(true));
  child.stderr?.on('data', onData(false));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      // Let the pipes drain before anyone reads the output.
      setTimeout(() => {
        resolve({ code, signal });
        for (const w of waiters) w();
      }, 50);
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    output: () => all,
    stdout: () => out,
    exited,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(all)) {
            cleanup();
            resolve();
          } else if (done) {
            cleanup();
            reject(new Error(`process exited before output matched ${pattern}; output:\n${all}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${all}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    jsonLines() {
      return out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
    },
  };
}

/** Runs the CLI to completion (bounded), returning its exit code and output. */
export async function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 30_000): Promise<{ code: number | null; output: string; stdout: string }> {
  const p = startCli(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output(), stdout: p.stdout() };
}

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
