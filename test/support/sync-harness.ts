/**
 * A whole sync on real parts, for the fault, crash and soak suites: the CloudCard simulator on loopback, a real
 * database (SQLite in a temp file, or PostgreSQL from TEST_PG_URL in a schema of its own), a `students` table
 * matching the simulator's people, and a `photo_log` target table in *insert* mode.
 *
 * Why insert mode: every write adds a row, so a photo written twice shows up as two rows instead of hiding
 * behind an upsert. Unmatched photos are found by the mapping's lookup query against `students`.
 */
import type { Knex } from 'knex';
import { afterEach, type TestContext } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { CloudCardClient, type CloudCardClientOptions } from '../../src/cloudcard/client.js';
import { parseMapping, type Mapping, type MappingInput } from '../../src/config/mapping.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { startSimulator, studentNumberFor, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { runSync, type RunOptions, type RunSummary, type SyncDeps } from '../../src/sync.js';
import { migrateLatest } from '../../src/target/migrate.js';
import { PhotoWriter } from '../../src/target/writer.js';
import { DIALECTS, type AcquiredDatabase } from './databases.js';

export type HarnessDialect = 'sqlite' | 'postgres';

export interface HarnessOptions {
  dialect: HarnessDialect;
  sim?: SimulatorOptions;
  /**
   * Changes to the default mapping (replacing whole top-level keys). A function gets the table names, which
   * on PostgreSQL carry the harness's fresh schema.
   */
  mapping?: Partial<MappingInput> | ((names: HarnessNames) => Partial<MappingInput>);
  /** Client settings; the defaults retry fast so fault tests take milliseconds, not seconds. */
  client?: Partial<CloudCardClientOptions>;
  concurrency?: number;
  pageSize?: number;
  logger?: Logger;
}

export interface HarnessNames {
  /** Schema-qualified where there is a schema, as the mapping's target.table wants them. */
  tables: { students: string; photoLog: string };
  /** The students table quoted for raw SQL (a lookup query). */
  quotedStudents: string;
}

export interface Harness {
  dialect: HarnessDialect;
  sim: Simulator;
  db: AcquiredDatabase;
  knex: Knex;
  /** The job-table schema (PostgreSQL) or undefined (SQLite). */
  schema: string | undefined;
  tables: { students: string; photoLog: string };
  mapping: Mapping;
  mappingInput: MappingInput;
  clientOptions: CloudCardClientOptions;
  /** A fresh client per run, as a new process would have. */
  newClient(): CloudCardClient;
  deps(client?: CloudCardClient): SyncDeps;
  run(opts?: RunOptions & { client?: CloudCardClient }): Promise<RunSummary>;
  /** Adds a students row for every simulator person with a valid student number (idempotent). */
  seedStudents(): Promise<void>;
  /** Writes the mapping as YAML into `dir` for the CLI; returns the path. */
  writeMappingFile(dir: string): string;
  close(): Promise<void>;
}

/** Acquires the database; a string is the reason it is not available (print it and skip). */
/**
 * For a test file: `const harness = harnessPerTest()`, then `await harness(ctx, dialect, opts)` in a test
 * starts one (or skips the test, printing why) and closes it after the test.
 */
export function harnessPerTest(): (ctx: TestContext, dialect: HarnessDialect, opts?: Omit<HarnessOptions, 'dialect'>) => Promise<Harness> {
  const open: Harness[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((h) => h.close()));
  });
  return async (ctx, dialect, opts = {}) => {
    const h = await startHarness({ dialect, ...opts });
    if (typeof h === 'string') {
      console.log(h);
      ctx.skip(h);
      throw new Error('unreachable');
    }
    open.push(h);
    return h;
  };
}

export async function startHarness(opts: HarnessOptions): Promise<Harness | string> {
  const dialect = DIALECTS.find((d) => d.name === opts.dialect);
  if (!dialect) throw new Error(`no dialect ${opts.dialect}`);
  if (opts.dialect === 'postgres' && !process.env.TEST_PG_URL) return 'PostgreSQL runs skipped: set TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test';
  const db = await dialect.acquire();
  if ('skip' in db) return db.skip;
  const { knex, schema } = db;
  const q = (name: string) => (schema ? `${schema}.${name}` : name);
  const tables = { students: q('students'), photoLog: q('photo_log') };

  const builder = () => (schema ? knex.schema.withSchema(schema) : knex.schema);
  await builder().createTable('students', (t) => {
    t.string('STUDENT_ID', 9).primary();
    t.string('NAME', 200);
  });
  await builder().createTable('photo_log', (t) => {
    t.increments('ROW_ID');
    t.string('STUDENT_ID', 9).notNullable();
    t.binary('PHOTO').notNullable();
    t.string('PHOTO_TYPE', 20);
    t.bigInteger('CLOUDCARD_PHOTO_ID').notNullable();
    t.integer('CLOUDCARD_VERSION').notNullable();
    t.string('PHOTO_SHA256', 64);
    t.text('FULL_NAME');
    t.text('NOTES');
    t.text('NICKNAME');
    t.timestamp('STORED_AT');
  });
  await migrateLatest(knex, schema);

  const quotedStudents = schema ? `"${schema}"."students"` : '"students"';
  const mappingInput: MappingInput = {
    name: 'fault-suite harness',
    studentKey: {
      from: 'identifier',
      clean: { trim: true, zeroPad: 9, pattern: '^\\d{9}$' },
      lookup: { sql: `select "STUDENT_ID" from ${quotedStudents} where "STUDENT_ID" = :key` },
    },
    target: {
      table: tables.photoLog,
      keyColumn: 'STUDENT_ID',
      blobColumn: 'PHOTO',
      mode: 'insert',
      keyIsUnique: false,
      columns: {
        PHOTO_TYPE: { from: 'photo.contentType' },
        CLOUDCARD_PHOTO_ID: { from: 'photo.id' },
        CLOUDCARD_VERSION: { from: 'photo.version' },
        PHOTO_SHA256: { from: 'photo.sha256' },
        FULL_NAME: { customField: 'Full Name' },
        NOTES: { customField: 'Notes' },
        NICKNAME: { customField: 'Nickname' },
        STORED_AT: { from: 'now' },
      },
    },
    unmatched: { action: 'hold', reason: 'Card office: check the student ID.' },
    badImage: { action: 'fail' },
    images: { maxBytes: 200_000 },
    ...(typeof opts.mapping === 'function' ? opts.mapping({ tables, quotedStudents }) : opts.mapping),
  };
  const mapping = parseMapping(mappingInput, 'harness mapping');

  const sim = await startSimulator({ photoCount: 12, imageBytes: 6_000, ...opts.sim });
  const clientOptions: CloudCardClientOptions = {
    baseUrl: sim.baseUrl,
    accessToken: sim.accessToken,
    timeoutMs: 2_000,
    maxRetries: 4,
    retryBaseMs: 5,
    logger: opts.logger ?? silentLogger,
    ...opts.client,
  };
  const logger = opts.logger ?? silentLogger;
  const writer = new PhotoWriter({ knex, target: mapping.target, ...(schema ? { jobSchema: schema } : {}), ...(mapping.studentKey.lookup ? { lookupSql: mapping.studentKey.lookup.sql } : {}) });

  const harness: Harness = {
    dialect: opts.dialect,
    sim,
    db,
    knex,
    schema,
    tables,
    mapping,
    mappingInput,
    clientOptions,
    newClient: () => new CloudCardClient(clientOptions),
    deps: (client) => ({
      client: client ?? harness.newClient(),
      knex,
      writer,
      mapping,
      jobSchema: schema,
      concurrency: opts.concurrency ?? 4,
      pageSize: opts.pageSize ?? 50,
      logger,
    }),
    run: ({ client, ...runOpts } = {}) => runSync(harness.deps(client), runOpts),
    async seedStudents() {
      const ids = new Set<string>();
      for (const p of sim.photos()) {
        const id = studentNumberFor(p.person);
        if (id) ids.add(id);
      }
      const existing = new Set((await knex(tables.students).select('STUDENT_ID')).map((r: { STUDENT_ID: string }) => r.STUDENT_ID));
      const rows = [...ids].filter((id) => !existing.has(id)).map((id) => ({ STUDENT_ID: id, NAME: `student ${id}` }));
      if (rows.length) await knex.batchInsert(tables.students, rows, 100);
    },
    writeMappingFile(dir) {
      const file = path.join(dir, 'mapping.yaml');
      writeFileSync(file, toYaml(mappingInput));
      return file;
    },
    async close() {
      await sim.close();
      await db.close();
    },
  };
  await harness.seedStudents();
  return harness;
}
