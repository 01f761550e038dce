/**
 * Status queue mode end to end: the real @aws-sdk/client-sqs against the simulator's local SQS endpoint,
 * the real CloudCard client against the simulator, a real SQLite campus database. In-process consumers for
 * the message-level behaviour; `node dist/src/cli.js consume` child processes for crashes and for two
 * consumers sharing one queue (run `npx tsc -p .` first; `npm test` does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Knex } from 'knex';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoStudents } from '../src/commands/demo.js';
import { loadMapping } from '../src/config/mapping.js';
import { loadSettings } from '../src/config/settings.js';
import { openJob } from '../src/job.js';
import { createLogger } from '../src/log.js';
import { startSimulator, type Simulator, type StatusQueueOptions } from '../src/simulator/index.js';
import { parseQueueMessage, QueueSource, regionOfQueueUrl } from '../src/sources/queue.js';
import { runSync, type RunSummary } from '../src/sync.js';
import { openDatabase } from '../src/target/connection.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const CLI = path.join(ROOT, 'dist/src/cli.js');
const MAPPING = path.join(ROOT, 'mappings/demo-sqlite.yaml');

interface Fixture {
  sim: Simulator;
  knex: Knex;
  env: Record<string, string>;
  dir: string;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fixture(photoCount: number, queue: Partial<StatusQueueOptions> = {}, latencyMs = 0): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cc-queue-'));
  const sim = await startSimulator({ photoCount, latencyMs, statusQueue: { status: 'READY_FOR_DOWNLOAD', messageType: 'FULL', visibilityTimeoutSeconds: 5, ...queue } });
  const databaseUrl = `sqlite:${path.join(dir, 'campus.sqlite')}`;
  const knex = openDatabase(databaseUrl);
  await seedDemoStudents(knex, photoCount, { unmatchedEvery: 0 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => sim.close(), () => knex.destroy());
  const env = {
    DATABASE_URL: databaseUrl,
    CLOUDCARD_BASE_URL: sim.baseUrl,
    CLOUDCARD_ACCESS_TOKEN: sim.accessToken,
    CLOUDCARD_SYNC_MAPPING: MAPPING,
    CLOUDCARD_SYNC_QUEUE_URL: sim.queue!.url,
    AWS_ENDPOINT_URL_SQS: sim.queue!.endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'test-access-key',
    AWS_SECRET_ACCESS_KEY: 'test-secret-key',
    CLOUDCARD_SYNC_QUEUE_WAIT_SECONDS: '1',
    CLOUDCARD_SYNC_CONCURRENCY: '4',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
  };
  return { sim, knex, env, dir };
}

type LogLine = Record<string, unknown> & { msg?: string };

/** runSync with the queue source in this process, until `done()` holds; then a graceful stop. */
async function consume(f: Fixture, done: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<{ summary: RunSummary; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const settings = loadSettings(f.env);
  const job = await openJob(settings, loadMapping(MAPPING), createLogger({ level: 'debug', format: 'json', destination }));
  const sqs = new SQSClient({ endpoint: f.sim.queue!.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const stop = new AbortController();
  try {
    const source = new QueueSource({
      sqs,
      queueUrl: f.sim.queue!.url,
      client: job.deps.client,
      statuses: job.deps.mapping.statuses,
      messageType: settings.queueMessageType,
      concurrency: job.deps.concurrency,
      waitTimeSeconds: 1,
      logger: job.deps.logger,
    });
    const run = runSync(job.deps, { trigger: 'queue', signal: stop.signal, source });
    await waitFor(done, timeoutMs);
    stop.abort();
    return { summary: await run, logs };
  } finally {
    sqs.destroy();
    await job.close();
  }
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const allDownloaded = (sim: Simulator) => sim.photos().every((p) => p.status === 'DOWNLOADED');
const drained = (f: Fixture) => () => f.sim.queue!.contents().length === 0 && allDownloaded(f.sim);
const ledger = (knex: Knex) => knex('cloudcard_ledger').select('photo_id', 'version', 'outcome').orderBy('photo_id') as Promise<Array<{ photo_id: number; version: number; outcome: string }>>;
const receivesOf = (sim: Simulator, messageId: string) => sim.queue!.operations().filter((o) => o.action === 'ReceiveMessage' && o.messageId === messageId).length;

describe('status queue messages', () => {
  it('parses FULL bodies, ID bodies in every form, and rejects the rest', () => {
    const full = JSON.stringify({ id: 5, status: 'READY_FOR_DOWNLOAD', person: { identifier: '1' }, links: { bytes: 'http://x/1.jpg' } });
    expect(parseQueueMessage(full, 'auto')).toMatchObject({ kind: 'photo', photo: { id: 5 } });
    expect(parseQueueMessage(full, 'ID')).toEqual({ kind: 'id', id: 5 });
    expect(parseQueueMessage('{"id": 7}', 'auto')).toEqual({ kind: 'id', id: 7 });
    expect(parseQueueMessage('{"id": "8"}', 'FULL')).toMatchObject({ kind: 'photo', photo: { id: 8 } });
    expect(parseQueueMessage('9', 'auto')).toEqual({ kind: 'id', id: 9 });
    expect(parseQueueMessage('"10"', 'FULL')).toEqual({ kind: 'id', id: 10 });
    expect(parseQueueMessage('not json', 'auto')).toEqual({ kind: 'malformed', reason: 'body is not JSON' });
    for (const body of ['{"photoId": 1}', '[1]', '-3', '0', '1.5', 'null', '']) expect(parseQueueMessage(body, 'auto').kind).toBe('malformed');
    expect(regionOfQueueUrl('https://sqs.eu-west-1.amazonaws.com/123456789012/photos')).toBe('eu-west-1');
    expect(regionOfQueueUrl('http://127.0.0.1:9/sqs/000000000000/photos')).toBeUndefined();
  });
});

describe('queue consumer in process', () => {
  it('stores each photo once, marks it DOWNLOADED, and deletes its message only after commit and acknowledgement', async () => {
    const f = await fixture(6);
    const atDelete: Array<{ photoId: number; status: string | undefined }> = [];
    f.sim.queue!.onDelete((m) => {
      const photoId = (JSON.parse(m.body) as { id: number }).id;
      atDelete.push({ photoId, status: f.sim.photo(photoId)?.status });
    });
    const { summary } = await consume(f, drained(f));
    expect(summary.counts).toMatchObject({ found: 6, stored: 6, acknowledged: 6, left: 0 });
    expect(summary.stopped).toBe(true);
    expect((await ledger(f.knex)).map((r) => r.photo_id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(atDelete.map((d) => d.photoId).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    // Deleted after the PUT, which itself follows COMMIT.
    expect(atDelete.every((d) => d.status === 'DOWNLOADED')).toBe(true);
    const photos = await f.knex('students').whereNotNull('PHOTO').count<Array<{ n: number }>>({ n: '*' });
    expect(Number(photos[0]!.n)).toBe(6);
  });

  it('looks up ID messages ({"id": n} and a bare number), and deletes the message of a photo that no longer exists', async () => {
    const f = await fixture(3, { messageType: 'ID' });
    f.sim.queue!.send('2');
    const gone = f.sim.queue!.send('{"id": 999}');
    const { summary, logs } = await consume(f, drained(f));
    expect(summary.counts).toMatchObject({ stored: 3, left: 0 });
    expect((await ledger(f.knex)).map((r) => r.photo_id)).toEqual([1, 2, 3]);
    expect(logs.some((l) => l.messageId === gone && l.photoId === 999 && String(l.msg).includes('no longer exists'))).toBe(true);
    const requests = f.sim.requests();
    expect(requests.some((r) => r.method === 'GET' && r.path === '/api/photo/999' && r.status === 404)).toBe(true);
  });

  it('acknowledges duplicate (id, status) messages without writing again', async () => {
    const f = await fixture(3);
    f.sim.queue!.enqueuePhoto(1);
    f.sim.queue!.enqueuePhoto(1);
    const { summary } = await consume(f, drained(f));
    expect(summary.counts).toMatchObject({ found: 5, stored: 3, alreadyStored: 2, left: 0 });
    expect(await ledger(f.knex)).toHaveLength(3);
    expect(f.sim.queue!.contents()).toEqual([]);
  });

  it('leaves malformed messages for the redrive policy, logged with their MessageId, without looping hot or stopping', async () => {
    const f = await fixture(3, { visibilityTimeoutSeconds: 1, maxReceiveCount: 2 });
    const notJson = f.sim.queue!.send('<xml>not json</xml>');
    const noId = f.sim.queue!.send('{"photo": "none"}');
    const { summary, logs } = await consume(f, () => allDownloaded(f.sim) && f.sim.queue!.deadLetters().length === 2, 10_000);
    expect(summary.counts).toMatchObject({ stored: 3, left: 0 });
    for (const id of [notJson, noId]) {
      expect(logs.some((l) => l.messageId === id && l.level === 'warn' && String(l.msg).includes('malformed'))).toBe(true);
      // Received once per visibility timeout, then dead-lettered: not hot.
      expect(receivesOf(f.sim, id)).toBe(2);
    }
    expect(f.sim.queue!.deadLetters().map((m) => m.messageId).sort()).toEqual([notJson, noId].sort());
  });

  it('keeps a slow photo invisible with a heartbeat, so it is not delivered twice', async () => {
    const f = await fixture(1, { visibilityTimeoutSeconds: 1 });
    f.sim.faults.add({ kind: 'slow', delayMs: 2_500, match: { method: 'GET', photoId: 1, path: '/storage/' } });
    const [message] = f.sim.queue!.contents();
    const { summary } = await consume(f, drained(f));
    expect(summary.counts).toMatchObject({ stored: 1, alreadyStored: 0 });
    expect(receivesOf(f.sim, message!.messageId)).toBe(1);
    expect(f.sim.queue!.operations().filter((o) => o.action === 'ChangeMessageVisibility').length).toBeGreaterThanOrEqual(3);
  });
});

interface Consumer {
  child: ChildProcess;
  logs: LogLine[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startConsumer(env: Record<string, string>, extraArgs: string[] = []): Consumer {
  const child = spawn(process.execPath, [CLI, 'consume', ...extraArgs], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as LogLine);
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) process.stderr.write(`consumer exited ${code}: ${stderr}\n`);
      resolve({ code, signal });
    }),
  );
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, logs, exited };
}

const ready = (c: Consumer) => () => c.logs.some((l) => l.msg === 'consuming the status queue');
const storedBy = (c: Consumer) => c.logs.filter((l) => l.msg === 'photo stored').map((l) => l.photoId as number);

async function studentRow(knex: Knex, photoId: number) {
  return knex('students').where({ CLOUDCARD_PHOTO_ID: photoId }).first('STUDENT_ID', 'PHOTO', 'PHOTO_UPDATED_AT');
}


/**
 * After a consumer was killed holding a committed photo: a second consumer drains the queue and stops
 * cleanly, every photo has exactly one ledger row, and the killed one's row in the table is untouched.
 */
async function secondConsumerFinishesWithoutRewriting(f: Fixture, photoId: number, before: unknown): Promise<void> {
  const second = startConsumer(f.env);
  await waitFor(drained(f), 15_000);
  second.child.kill('SIGTERM');
  expect((await second.exited).code).toBe(0);
  expect((await ledger(f.knex)).map((r) => r.photo_id)).toEqual([1, 2, 3]);
  expect(await studentRow(f.knex, photoId)).toEqual(before);
  expect(storedBy(second)).not.toContain(photoId);
}

describe('consume command (child processes)', () => {
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first with \`npx tsc -p .\` (npm test does)`);
  });

  it('a consumer killed after storing a photo but before deleting its message: the redelivery writes nothing twice', async () => {
    const f = await fixture(3, { visibilityTimeoutSeconds: 1 });
    const firstDelete = f.sim.queue!.stallDeletes();
    const first = startConsumer(f.env, ['--concurrency', '1']);
    const stalledMessage = await firstDelete;
    first.child.kill('SIGKILL');
    await first.exited;
    f.sim.queue!.resumeDeletes();

    const photoId = (JSON.parse(f.sim.queue!.contents().find((m) => m.messageId === stalledMessage)!.body) as { id: number }).id;
    expect(f.sim.photo(photoId)!.status).toBe('DOWNLOADED');
    const before = await studentRow(f.knex, photoId);
    expect(before?.PHOTO).toBeTruthy();

    await secondConsumerFinishesWithoutRewriting(f, photoId, before);
    expect(receivesOf(f.sim, stalledMessage)).toBe(2);
  });

  it('a consumer killed after COMMIT but before telling CloudCard: the next one acknowledges without writing again', async () => {
    const f = await fixture(3, { visibilityTimeoutSeconds: 1 });
    f.sim.faults.add({ kind: 'slow', delayMs: 60_000, match: { method: 'PUT' } });
    const first = startConsumer(f.env, ['--concurrency', '1']);
    await waitFor(() => f.sim.requests().some((r) => r.method === 'PUT' && r.fault === 'slow'), 15_000);
    first.child.kill('SIGKILL');
    await first.exited;
    // The photo whose PUT hung was committed and never acknowledged (a photo gives up its slot once written,
    // so another may have been committed meanwhile too).
    const photoId = Number(/\/api\/photo\/(\d+)/.exec(f.sim.requests().find((r) => r.fault === 'slow')!.path)![1]);
    expect((await ledger(f.knex)).map((r) => r.photo_id)).toContain(photoId);
    expect(f.sim.photo(photoId)!.status).toBe('READY_FOR_DOWNLOAD');
    const before = await studentRow(f.knex, photoId);
    expect(before?.PHOTO).toBeTruthy();

    await secondConsumerFinishesWithoutRewriting(f, photoId, before);
    expect(f.sim.photo(photoId)!.statusHistory.filter((h) => h.status === 'DOWNLOADED')).toHaveLength(1);
  });

  it('two consumers on one queue store each photo exactly once, and both stop cleanly on SIGTERM', async () => {
    const f = await fixture(20, { enqueueExisting: false, visibilityTimeoutSeconds: 5 }, 30);
    const a = startConsumer(f.env, ['--concurrency', '3']);
    const b = startConsumer(f.env, ['--concurrency', '3']);
    await waitFor(() => ready(a)() && ready(b)(), 15_000);
    for (const photo of f.sim.photos()) f.sim.queue!.enqueuePhoto(photo.id);
    await waitFor(drained(f), 20_000);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);

    const rows = await ledger(f.knex);
    expect(rows.map((r) => r.photo_id)).toEqual(f.sim.photos().map((p) => p.id));
    const stored = [...storedBy(a), ...storedBy(b)].sort((x, y) => x - y);
    expect(stored).toEqual(f.sim.photos().map((p) => p.id));
    expect(storedBy(a).length).toBeGreaterThan(0);
    expect(storedBy(b).length).toBeGreaterThan(0);
    expect(a.logs.some((l) => String(l.msg).startsWith('stop requested'))).toBe(true);
  });
});
