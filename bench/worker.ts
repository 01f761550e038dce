/**
 * One measurement in its own process (forked by bench.ts), so that its peak RSS and CPU are its own:
 *   job         the real job: openJob + runSync, default settings except the ones the benchmark sets
 *   network     limit (a): list + download the same photos at the same concurrency, nothing else
 *   database    limit (b): a bare INSERT of key + blob per statement, at the same concurrency and pool size
 *   sequential  baseline (c): one photo at a time, as a simple downloader does it: list, download,
 *               count-then-update/insert without a transaction, PUT without version
 * The task comes as JSON in argv[2]; the MeasureResult goes back over IPC. Setup (migrations, creating
 * tables, generating blobs' recipes) happens before the clock starts; only the work itself is timed.
 */
import type { Knex } from 'knex';
import { loadSettings } from '../src/config/settings.js';
import { openJob } from '../src/job.js';
import { createLogger } from '../src/log.js';
import { PhotoStore } from '../src/simulator/store.js';
import { studentNumberFor } from '../src/simulator/people.js';
import { runSync } from '../src/sync.js';
import { openDatabase } from '../src/target/connection.js';
import { benchMapping, benchTable, BLOBS_TABLE, STUDENTS_TABLE, type MeasureResult, type MeasureTask } from './common.js';

const task = JSON.parse(process.argv[2] ?? '{}') as MeasureTask;

type Measured = Omit<MeasureResult, 'peakRssMb' | 'kind'>;

const MEASURES: Record<MeasureTask['kind'], (t: MeasureTask) => Promise<Measured>> = {
  job: measureJob,
  network: measureNetwork,
  database: measureDatabase,
  sequential: measureSequential,
};

const result = await MEASURES[task.kind](task);
const report: MeasureResult = { kind: task.kind, ...result, peakRssMb: round(process.resourceUsage().maxRSS / 1024, 1) };
process.send?.(report, () => process.exit(0));

// --- (job) -------------------------------------------------------------------------------------------

async function measureJob(t: MeasureTask): Promise<Measured> {
  // Default settings from the environment (CLOUDCARD_SYNC_CONCURRENCY, LOG_LEVEL, ...) except where the
  // benchmark must decide. Log lines go to stdout, which bench.ts discards: writing them is part of the cost.
  const settings = loadSettings(process.env, {
    baseUrl: t.baseUrl,
    accessToken: t.accessToken,
    databaseUrl: t.databaseUrl,
    jobSchema: t.jobSchema,
    concurrency: t.concurrency,
    logFormat: 'json',
  });
  const logger = createLogger({ level: settings.logLevel, format: 'json' });
  const job = await openJob(settings, benchMapping(benchTable(STUDENTS_TABLE, t.jobSchema)), logger);
  try {
    const started = performance.now();
    const summary = await runSync(job.deps, { trigger: 'bench' });
    const wallMs = performance.now() - started;
    const c = summary.counts;
    const problem = c.stored === t.photos && c.acknowledged === t.photos ? undefined : `stored ${c.stored}, acknowledged ${c.acknowledged} of ${t.photos}`;
    return { photos: c.stored, bytes: job.deps.client.stats.bytesDownloaded, wallMs, ...(problem ? { problem } : {}) };
  } finally {
    await job.close();
  }
}

// --- (a) network limit ---------------------------------------------------------------------------------

interface ListedPhoto {
  id: number;
  version?: number;
  person?: { identifier?: string | null };
  links?: { bytes?: string };
  externalURL?: string;
}

async function login(t: MeasureTask): Promise<string> {
  const res = await fetch(`${t.baseUrl}/authentication-token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ persistentAccessToken: t.accessToken }),
  });
  if (res.status !== 200) throw new Error(`simulator login failed: HTTP ${res.status}`);
  return ((await res.json()) as { tokenValue: string }).tokenValue;
}

async function listPage(t: MeasureTask, token: string, offset: number, max: number): Promise<ListedPhoto[]> {
  const res = await fetch(`${t.baseUrl}/photo?status=READY_FOR_DOWNLOAD&offset=${offset}&max=${max}`, {
    headers: { 'x-auth-token': token, accept: 'application/json' },
  });
  if (res.status !== 200) throw new Error(`listing failed: HTTP ${res.status}`);
  return (await res.json()) as ListedPhoto[];
}

async function download(photo: ListedPhoto): Promise<Buffer> {
  const res = await fetch(photo.links?.bytes ?? photo.externalURL ?? '');
  if (res.status !== 200) throw new Error(`download of photo ${photo.id} failed: HTTP ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Pages of 1000 listed one after another, each photo's bytes fetched by `concurrency` workers; nothing is marked. */
async function measureNetwork(t: MeasureTask): Promise<Measured> {
  const started = performance.now();
  const token = await login(t);
  let bytes = 0;
  let photos = 0;
  const pages = async function* () {
    for (let offset = 0; ; offset += 1000) {
      const page = await listPage(t, token, offset, 1000);
      yield* page;
      if (page.length < 1000) return;
    }
  };
  const queue = pages();
  const worker = async () => {
    for (;;) {
      const next = await queue.next();
      if (next.done) return;
      const blob = await download(next.value);
      bytes += blob.length;
      photos++;
    }
  };
  await Promise.all(Array.from({ length: t.concurrency }, worker));
  return { photos, bytes, wallMs: performance.now() - started };
}

// --- (b) database limit --------------------------------------------------------------------------------

/**
 * The same blobs, regenerated from the simulator's recipes in this process (a few buffer copies each: far
 * cheaper than the insert), written one INSERT per blob by `concurrency` workers over a pool of the job's size.
 */
async function measureDatabase(t: MeasureTask): Promise<Measured> {
  const store = new PhotoStore({ photoCount: t.photos, imageBytes: t.imageBytes, pngEvery: 5, seed: 1, unmatchedEvery: 0 });
  const knex = openDatabase(t.databaseUrl, { poolMax: t.concurrency + 3 });
  try {
    const table = benchTable(BLOBS_TABLE, t.jobSchema);
    const ddl = () => (t.jobSchema ? knex.schema.withSchema(t.jobSchema) : knex.schema);
    await ddl().dropTableIfExists(BLOBS_TABLE);
    await ddl().createTable(BLOBS_TABLE, (tb) => {
      tb.string('student_id', 9).primary();
      tb.binary('photo');
    });
    const photos = store.inOrder();
    const started = performance.now();
    let next = 0;
    let bytes = 0;
    const worker = async () => {
      while (next < photos.length) {
        const photo = photos[next++]!;
        const blob = photo.bytes;
        await knex(table).insert({ student_id: String(photo.id).padStart(9, '0'), photo: blob });
        bytes += blob.length;
      }
    };
    await Promise.all(Array.from({ length: t.concurrency }, worker));
    return { photos: photos.length, bytes, wallMs: performance.now() - started };
  } finally {
    await knex.destroy();
  }
}

// --- (c) sequential baseline -------------------------------------------------------------------------

/**
 * What a simple downloader does (the vendor's, in outline): one page of at most 1000, then photo by photo:
 * download, count rows for the key, UPDATE (or INSERT), no transaction, then PUT the status without a version.
 */
async function measureSequential(t: MeasureTask): Promise<Measured> {
  const knex: Knex = openDatabase(t.databaseUrl, { poolMax: 1 });
  const table = benchTable(STUDENTS_TABLE, t.jobSchema);
  try {
    await knex.raw('select 1');
    const started = performance.now();
    const token = await login(t);
    let photos = 0;
    let bytes = 0;
    while (photos < t.limit) {
      const page = await listPage(t, token, 0, Math.min(1000, t.limit - photos));
      if (page.length === 0) break;
      for (const photo of page) {
        const blob = await download(photo);
        const key = studentNumberFor({ identifier: photo.person?.identifier });
        if (key === null) throw new Error(`photo ${photo.id} has no usable identifier`);
        const [row] = (await knex(table).where('student_id', key).count({ n: '*' })) as Array<{ n: number | string }>;
        if (Number(row?.n ?? 0) > 0) await knex(table).where('student_id', key).update({ photo: blob });
        else await knex(table).insert({ student_id: key, photo: blob });
        const res = await fetch(`${t.baseUrl}/photo/${photo.id}`, {
          method: 'PUT',
          headers: { 'x-auth-token': token, 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ status: 'DOWNLOADED' }),
        });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`marking photo ${photo.id} failed: HTTP ${res.status}`);
        bytes += blob.length;
        photos++;
      }
    }
    return { photos, bytes, wallMs: performance.now() - started };
  } finally {
    await knex.destroy();
  }
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

