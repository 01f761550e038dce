/**
 * `cloudcard-sync demo`: the whole job on its embedded default, with no accounts: the local CloudCard
 * simulator seeded with a few dozen photos, and a SQLite campus database seeded with matching students
 * (plus photos whose person matches no student). Runs one sync and prints the summary, then a second
 * one to show that nothing is written twice.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { Knex } from 'knex';
import { loadMapping } from '../config/mapping.js';
import { dialectName } from '../target/connection.js';
import { loadSettings } from '../config/settings.js';
import { openJob } from '../job.js';
import { packageRoot } from '../paths.js';
import { formatSummary } from '../report.js';
import { seedPeople, startSimulator, studentNumberFor } from '../simulator/index.js';
import { runSync } from '../sync.js';
import { exitCodeFor } from './run.js';
import { loggerFrom } from './common.js';

interface DemoFlags {
  photos: string;
  databaseUrl?: string;
  logLevel: string;
}

/** Students who never submitted a photo: they stay without one, which the demo shows too. */
const STUDENTS_WITHOUT_PHOTOS = ['000000101', '000000102', '000000103'];
const UNMATCHED_EVERY = 9;

/**
 * Creates and fills the demo's `students` table (in `schema` if given) with the students the simulator's
 * people stand for (same count, seed 1 and unmatchedEvery as the simulator); tests use it as their campus database too.
 */
export async function seedDemoStudents(
  knex: Knex,
  photoCount: number,
  opts: { unmatchedEvery?: number; schema?: string | undefined } = {},
): Promise<number> {
  const { schema, unmatchedEvery = UNMATCHED_EVERY } = opts;
  // knex.schema makes a new builder on every access, and a builder runs its statements once.
  const ddl = () => (schema ? knex.schema.withSchema(schema) : knex.schema);
  await ddl().dropTableIfExists('students');
  await ddl().createTable('students', (t) => {
    t.string('STUDENT_ID', 9).primary();
    t.string('FIRST_NAME', 100);
    t.string('LAST_NAME', 100);
    // MySQL's plain BLOB holds only 64 KB; real ID photos need LONGBLOB there (`check` says the same).
    if (dialectName(knex) === 'mysql') t.specificType('PHOTO', 'longblob');
    else t.binary('PHOTO');
    t.string('PHOTO_TYPE', 20);
    t.timestamp('PHOTO_UPDATED_AT');
    t.bigInteger('CLOUDCARD_PHOTO_ID');
  });
  const rows = seedPeople(photoCount, 1, unmatchedEvery)
    .map((p) => ({ id: studentNumberFor(p), first: p.customFields['First Name'], last: p.customFields['Last Name'] }))
    .filter((p): p is { id: string; first: string; last: string } => p.id !== null)
    .map((p) => ({ STUDENT_ID: p.id, FIRST_NAME: p.first, LAST_NAME: p.last }));
  for (const id of STUDENTS_WITHOUT_PHOTOS) rows.push({ STUDENT_ID: id, FIRST_NAME: 'No', LAST_NAME: 'Photo' });
  await knex.batchInsert(schema ? `${schema}.students` : 'students', rows, 100);
  return rows.length;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the job end to end on its embedded default: the local CloudCard simulator into a SQLite database (no accounts needed)')
    .option('--photos <n>', 'photos the simulator offers', '40')
    .option('--database-url <url>', 'demo into another database instead of .cloudcard-sync/demo.sqlite')
    .option('--log-level <level>', 'log level (the summary lists every photo that needs a look)', 'error')
    .action(async (flags: DemoFlags) => {
      const photoCount = Number(flags.photos);
      let databaseUrl = flags.databaseUrl;
      if (!databaseUrl) {
        const dir = path.resolve('.cloudcard-sync');
        mkdirSync(dir, { recursive: true });
        const file = path.join(dir, 'demo.sqlite');
        for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
        databaseUrl = `sqlite:${file}`;
      }
      const sim = await startSimulator({ photoCount, unmatchedEvery: UNMATCHED_EVERY, seed: 1 });
      const settings = loadSettings({}, { baseUrl: sim.baseUrl, accessToken: sim.accessToken, databaseUrl, logLevel: flags.logLevel, logFormat: 'pretty' });
      const logger = loggerFrom(settings);
      const mapping = loadMapping(path.join(packageRoot(), 'mappings', 'demo-sqlite.yaml'));
      const job = await openJob(settings, mapping, logger);
      try {
        const students = await seedDemoStudents(job.deps.knex, photoCount);
        process.stdout.write(
          `CloudCard simulator at ${sim.baseUrl} with ${photoCount} photos ready; campus database ${databaseUrl} with ${students} students.\n\n`,
        );
        const first = await runSync(job.deps, { trigger: 'demo' });
        process.stdout.write(`${formatSummary(first)}\n\n`);
        const withPhoto = await job.deps.knex('students').whereNotNull('PHOTO').count({ n: '*' });
        process.stdout.write(`Students with a photo in the database: ${String(withPhoto[0]?.n)} of ${students}.\n`);
        const second = await runSync(job.deps, { trigger: 'demo' });
        process.stdout.write(`Second run: found ${second.counts.found}, stored ${second.counts.stored} (nothing new to do).\n`);
        process.exitCode = exitCodeFor(first);
      } finally {
        await job.close();
        await sim.close();
      }
    });
}
