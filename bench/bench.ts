/**
 * `npm run bench`: the real job end to end (simulator → job → database), next to its limits measured in the
 * same run on the same machine, so a figure says how close the job gets to what the machine allows.
 *
 * Every measured thing runs in its own child process (worker.ts), and the simulator in yet another
 * (sim-process.ts): peak RSS is per measurement, and the simulator does not share the job's event loop.
 * They do share the machine's cores, which the report states.
 *
 *   npm run bench                         all scenarios, PostgreSQL (BENCH_DATABASE_URL)
 *   npm run bench -- --quick              1,000 × 60 KB at 0 and 50 ms only (under a minute)
 *   npm run bench -- --scenario 10k       scenarios whose name contains "10k"
 *   npm run bench -- --db sqlite          into a SQLite file instead
 *   npm run bench -- --sweep-concurrency  the job alone at concurrency 4..64 (1,000 × 60 KB, 0 and 50 ms)
 *   npm run bench -- --profile            also write a CPU profile of each job run and summarize it
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { loadSettings } from '../src/config/settings.js';
import { seedPeople, studentNumberFor } from '../src/simulator/index.js';
import { openDatabase } from '../src/target/connection.js';
import { benchTable, STUDENTS_TABLE, type MeasureKind, type MeasureResult, type MeasureTask } from './common.js';
import { summarizeProfile } from './profile-summary.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const KB = 1024;

interface Scenario {
  name: string;
  photos: number;
  imageBytes: number;
  latencyMs: number;
}

const SCENARIOS: Scenario[] = [
  { name: '1k-60KB-0ms', photos: 1000, imageBytes: 60 * KB, latencyMs: 0 },
  { name: '1k-60KB-50ms', photos: 1000, imageBytes: 60 * KB, latencyMs: 50 },
  { name: '10k-60KB-0ms', photos: 10_000, imageBytes: 60 * KB, latencyMs: 0 },
  { name: '10k-60KB-50ms', photos: 10_000, imageBytes: 60 * KB, latencyMs: 50 },
  { name: '1k-1MB-0ms', photos: 1000, imageBytes: 1024 * KB, latencyMs: 0 },
  { name: '1k-1MB-50ms', photos: 1000, imageBytes: 1024 * KB, latencyMs: 50 },
];
const QUICK = new Set(['1k-60KB-0ms', '1k-60KB-50ms']);
const SWEEP_CONCURRENCY = [4, 8, 16, 32, 64];

/**
 * The sequential baseline runs on the first photos only: one at a time at 50 ms it manages ~10 photos/s,
 * and its rate does not depend on how many are waiting (it does the same per photo, and lists one page).
 */
function sequentialSubset(s: Scenario): number {
  return Math.min(s.photos, s.latencyMs > 0 ? 100 : 300);
}

interface Flags {
  db: 'postgres' | 'sqlite';
  quick?: boolean;
  scenario?: string;
  sweepConcurrency?: boolean;
  profile?: boolean;
  out: string;
}

interface Measurement extends MeasureResult {
  seconds: number;
  photosPerSecond: number;
  megabytes: number;
  megabytesPerSecond: number;
}

interface ScenarioResult extends Scenario {
  concurrency: number;
  job: Measurement;
  network: Measurement;
  database: Measurement;
  sequential: Measurement & { subsetOf: number };
  /** Job photos/s ÷ min(network, database) photos/s. */
  fractionOfLimit: number;
  /** Job photos/s ÷ sequential photos/s. */
  multipleOfSequential: number;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('bench')
    .option('--db <kind>', 'postgres (BENCH_DATABASE_URL) or sqlite', 'postgres')
    .option('--quick', 'only 1,000 × 60 KB at 0 and 50 ms')
    .option('--scenario <text>', 'only scenarios whose name contains this (e.g. 10k, 1MB, 50ms)')
    .option('--sweep-concurrency', `run the job alone on 1,000 × 60 KB at concurrency ${SWEEP_CONCURRENCY.join(', ')}`)
    .option('--profile', 'write a CPU profile of each job run (in the temp dir) and print where the time goes')
    .option('--out <file>', 'where to write the JSON results', 'bench-results.json')
    .parse();
  const flags = program.opts<Flags>();
  if (flags.db !== 'postgres' && flags.db !== 'sqlite') throw new Error(`--db must be postgres or sqlite, not ${String(flags.db)}`);
  const concurrency = loadSettings(process.env).concurrency;
  const machine = describeMachine(flags.db);
  process.stdout.write(`${machine.summary}\n`);

  if (flags.sweepConcurrency) {
    const sweep = await runSweep(flags);
    writeResults(flags.out, { machine, sweep });
    return;
  }

  const chosen = SCENARIOS.filter((s) => (!flags.quick || QUICK.has(s.name)) && (!flags.scenario || s.name.includes(flags.scenario)));
  if (!chosen.length) throw new Error(`no scenario matches; the scenarios are ${SCENARIOS.map((s) => s.name).join(', ')}`);
  process.stdout.write(`Concurrency ${concurrency} (CLOUDCARD_SYNC_CONCURRENCY), database ${flags.db}.\n\n`);
  const results: ScenarioResult[] = [];
  for (const scenario of chosen) {
    const result = await runScenario(scenario, concurrency, flags);
    results.push(result);
    process.stdout.write(`${formatScenario(result)}\n\n`);
  }
  const rss = rssGrowth(results);
  process.stdout.write(`${formatTable(results)}\n`);
  for (const r of rss) process.stdout.write(`Peak RSS of the job, ${r.large} vs ${r.small}: ${r.ratio.toFixed(2)}× (target ≤ 1.25×)\n`);
  writeResults(flags.out, { machine, concurrency, scenarios: results, rssGrowth: rss });
}

// --- running one scenario ------------------------------------------------------------------------------

let scenarioCounter = 0;

async function runScenario(s: Scenario, concurrency: number, flags: Flags): Promise<ScenarioResult> {
  process.stdout.write(`${s.name}: ${s.photos} photos of ~${formatBytes(s.imageBytes)} at ${s.latencyMs} ms latency\n`);
  const db = await createScenarioDatabase(flags.db, s.photos);
  try {
    const base = { photos: s.photos, imageBytes: s.imageBytes, limit: s.photos, concurrency, databaseUrl: db.url, jobSchema: db.schema };
    // The network limit only reads, so it shares the job's simulator and goes first, while every photo is
    // still READY_FOR_DOWNLOAD.
    const sim = await startSimulatorProcess(s);
    let network: MeasureResult;
    let job: MeasureResult;
    try {
      network = await measure({ ...base, ...sim, kind: 'network' }, flags, s);
      job = await measure({ ...base, ...sim, kind: 'job' }, flags, s);
    } finally {
      sim.stop();
    }
    const database = await measure({ ...base, kind: 'database' }, flags, s);
    const subset = sequentialSubset(s);
    const sim2 = await startSimulatorProcess(s);
    let sequential: MeasureResult;
    try {
      sequential = await measure({ ...base, ...sim2, kind: 'sequential', limit: subset }, flags, s);
    } finally {
      sim2.stop();
    }
    const m = { job: withRates(job), network: withRates(network), database: withRates(database), sequential: withRates(sequential) };
    const limit = Math.min(m.network.photosPerSecond, m.database.photosPerSecond);
    return {
      ...s,
      concurrency,
      ...m,
      sequential: { ...m.sequential, subsetOf: s.photos },
      fractionOfLimit: m.job.photosPerSecond / limit,
      multipleOfSequential: m.job.photosPerSecond / m.sequential.photosPerSecond,
    };
  } finally {
    await db.drop();
  }
}

async function runSweep(flags: Flags): Promise<Array<{ latencyMs: number; concurrency: number; photosPerSecond: number; peakRssMb: number }>> {
  const out: Array<{ latencyMs: number; concurrency: number; photosPerSecond: number; peakRssMb: number }> = [];
  for (const latencyMs of [0, 50]) {
    const s: Scenario = { name: `1k-60KB-${latencyMs}ms`, photos: 1000, imageBytes: 60 * KB, latencyMs };
    for (const concurrency of SWEEP_CONCURRENCY) {
      const db = await createScenarioDatabase(flags.db, s.photos);
      const sim = await startSimulatorProcess(s);
      try {
        const task: MeasureTask = { kind: 'job', photos: s.photos, imageBytes: s.imageBytes, limit: s.photos, concurrency, databaseUrl: db.url, jobSchema: db.schema, ...sim };
        const job = withRates(await measure(task, flags, s));
        out.push({ latencyMs, concurrency, photosPerSecond: round(job.photosPerSecond, 1), peakRssMb: job.peakRssMb });
        process.stdout.write(`${s.name} concurrency ${String(concurrency).padStart(2)}: ${job.photosPerSecond.toFixed(1).padStart(7)} photos/s, peak RSS ${job.peakRssMb} MB${job.problem ? `  (!) ${job.problem}` : ''}\n`);
      } finally {
        sim.stop();
        await db.drop();
      }
    }
  }
  return out;
}

// --- child processes -------------------------------------------------------------------------------------

interface SimulatorProcess {
  baseUrl: string;
  accessToken: string;
  stop(): void;
}

function startSimulatorProcess(s: Scenario): Promise<SimulatorProcess> {
  const child = fork(path.join(HERE, 'sim-process.js'), [JSON.stringify({ photos: s.photos, imageBytes: s.imageBytes, latencyMs: s.latencyMs })], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the simulator process exited early (code ${String(code)})`)));
    child.once('message', (m) => {
      const { baseUrl, accessToken } = m as { baseUrl: string; accessToken: string };
      resolve({ baseUrl, accessToken, stop: () => stopChild(child) });
    });
  });
}

function stopChild(child: ChildProcess): void {
  if (child.exitCode === null && child.connected) child.disconnect();
}

function measure(task: MeasureTask, flags: Flags, s: Scenario): Promise<MeasureResult> {
  const profileDir = flags.profile && task.kind === 'job' ? path.join(os.tmpdir(), 'cloudcard-bench-profiles', `${s.name}-c${task.concurrency}`) : undefined;
  if (profileDir) {
    rmSync(profileDir, { recursive: true, force: true });
    mkdirSync(profileDir, { recursive: true });
  }
  // The job's log lines go to its stdout, which is discarded: writing them stays part of the cost.
  const child = fork(path.join(HERE, 'worker.js'), [JSON.stringify(task)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [],
  });
  return new Promise((resolve, reject) => {
    let result: MeasureResult | undefined;
    child.once('error', reject);
    child.on('message', (m) => (result = m as MeasureResult));
    child.once('exit', (code) => {
      if (!result) return reject(new Error(`the ${task.kind} measurement of ${s.name} failed (exit code ${String(code)})`));
      if (profileDir) {
        const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
        if (file) process.stdout.write(`CPU profile of the job (${path.join(profileDir, file)}):\n${summarizeProfile(path.join(profileDir, file), 15)}\n`);
      }
      resolve(result);
    });
  });
}

// --- the scenario's database ------------------------------------------------------------------------

interface ScenarioDatabase {
  url: string;
  /** PostgreSQL: a fresh schema per scenario for both the campus table and the job's tables. */
  schema: string | undefined;
  drop(): Promise<void>;
}

/** A fresh database (schema or file) with a student row for every person the simulator will seed. */
async function createScenarioDatabase(kind: Flags['db'], photos: number): Promise<ScenarioDatabase> {
  scenarioCounter++;
  let url: string;
  let schema: string | undefined;
  let dir: string | undefined;
  if (kind === 'postgres') {
    url = process.env.BENCH_DATABASE_URL || DEFAULT_PG_URL;
    schema = `bench_${process.pid}_${scenarioCounter}`;
  } else {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cloudcard-bench-'));
    url = `sqlite:${path.join(dir, 'bench.sqlite')}`;
  }
  const knex = openDatabase(url, { poolMax: 2 });
  try {
    if (schema) await knex.raw('create schema ??', [schema]);
    const table = benchTable(STUDENTS_TABLE, schema);
    await (schema ? knex.schema.withSchema(schema) : knex.schema).createTable(STUDENTS_TABLE, (t) => {
      t.string('student_id', 9).primary();
      t.string('first_name', 100);
      t.string('last_name', 100);
      t.binary('photo');
      t.string('photo_type', 20);
      t.timestamp('photo_updated_at');
      t.bigInteger('cloudcard_photo_id');
    });
    const rows = seedPeople(photos, 1, 0).map((p) => ({
      student_id: studentNumberFor(p),
      first_name: p.customFields['First Name'],
      last_name: p.customFields['Last Name'],
    }));
    await knex.batchInsert(table, rows, 500);
  } finally {
    await knex.destroy();
  }
  return {
    url,
    schema,
    drop: async () => {
      if (dir) {
        rmSync(dir, { recursive: true, force: true });
        return;
      }
      const k = openDatabase(url, { poolMax: 1 });
      try {
        await k.raw('drop schema if exists ?? cascade', [schema!]);
      } finally {
        await k.destroy();
      }
    },
  };
}

// --- figures and report --------------------------------------------------------------------------------

function withRates(r: MeasureResult): Measurement {
  const seconds = r.wallMs / 1000;
  const megabytes = r.bytes / (1024 * 1024);
  return {
    ...r,
    wallMs: round(r.wallMs, 0),
    seconds: round(seconds, 2),
    photosPerSecond: round(r.photos / seconds, 1),
    megabytes: round(megabytes, 1),
    megabytesPerSecond: round(megabytes / seconds, 1),
  };
}

function rssGrowth(results: ScenarioResult[]): Array<{ small: string; large: string; ratio: number }> {
  const out: Array<{ small: string; large: string; ratio: number }> = [];
  for (const large of results.filter((r) => r.photos === 10_000)) {
    const small = results.find((r) => r.photos === 1000 && r.imageBytes === large.imageBytes && r.latencyMs === large.latencyMs);
    if (small) out.push({ small: small.name, large: large.name, ratio: round(large.job.peakRssMb / small.job.peakRssMb, 2) });
  }
  return out;
}

const KINDS: Array<[MeasureKind, string]> = [
  ['job', 'job'],
  ['network', '(a) network limit'],
  ['database', '(b) database limit'],
  ['sequential', '(c) sequential'],
];

function formatScenario(r: ScenarioResult): string {
  const lines = KINDS.map(([kind, label]) => {
    const m = r[kind];
    const subset = kind === 'sequential' && m.photos < r.photos ? ` (first ${m.photos} photos)` : '';
    return `  ${label.padEnd(20)} ${String(m.photos).padStart(6)} photos ${m.megabytes.toFixed(1).padStart(8)} MB ${m.seconds.toFixed(2).padStart(7)} s ${m.photosPerSecond.toFixed(1).padStart(8)} photos/s ${m.megabytesPerSecond.toFixed(1).padStart(7)} MB/s  RSS ${m.peakRssMb.toFixed(0).padStart(4)} MB${subset}${m.problem ? `  (!) ${m.problem}` : ''}`;
  });
  lines.push(`  job = ${r.fractionOfLimit.toFixed(2)} of min(a, b), ${r.multipleOfSequential.toFixed(1)}× (c)`);
  return lines.join('\n');
}

/** One markdown table for the README: a row per scenario. */
function formatTable(results: ScenarioResult[]): string {
  const head =
    '| scenario | photos | MB | job s | job photos/s | job MB/s | job peak RSS MB | (a) network photos/s | (b) database photos/s | (c) sequential photos/s | job ÷ min(a,b) | job ÷ (c) |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|';
  const rows = results.map(
    (r) =>
      `| ${r.name} | ${r.job.photos} | ${r.job.megabytes.toFixed(0)} | ${r.job.seconds.toFixed(1)} | ${r.job.photosPerSecond.toFixed(0)} | ${r.job.megabytesPerSecond.toFixed(1)} | ${r.job.peakRssMb.toFixed(0)} | ${r.network.photosPerSecond.toFixed(0)} | ${r.database.photosPerSecond.toFixed(0)} | ${r.sequential.photosPerSecond.toFixed(1)}${r.sequential.photos < r.photos ? ` (first ${r.sequential.photos})` : ''} | ${r.fractionOfLimit.toFixed(2)} | ${r.multipleOfSequential.toFixed(1)}× |`,
  );
  return [head, ...rows].join('\n');
}

function describeMachine(db: string): { summary: string; cpus: number; cpuModel: string; memoryGb: number; node: string; database: string } {
  const cpus = os.cpus();
  const info = { cpus: cpus.length, cpuModel: cpus[0]?.model ?? 'unknown', memoryGb: round(os.totalmem() / 1024 ** 3, 1), node: process.version, database: db };
  const summary =
    `Machine: ${info.cpus} cores (${info.cpuModel}), ${info.memoryGb} GB, Node ${info.node}. The simulator, the measured ` +
    `process${db === 'postgres' ? ' and PostgreSQL' : ''} share these cores, so the limits below are this machine's, not the network's.`;
  return { summary, ...info };
}

function writeResults(file: string, data: unknown): void {
  const out = path.resolve(file);
  writeFileSync(out, `${JSON.stringify(data, null, 2)}\n`);
  process.stdout.write(`\nResults written to ${out}\n`);
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(0)} MB` : `${(n / 1024).toFixed(0)} KB`;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
