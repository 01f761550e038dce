/**
 * The daemon's optional /healthz and Prometheus /metrics, fetched from a `schedule` child process after a
 * real run; and the endpoint's absence when no port is configured.
 */
import { afterEach, expect, it } from 'vitest';
import { startSimulator } from '../src/simulator/index.js';
import { sqliteCampus, syncEnv } from './support/cli-e2e.js';
import { type CliProcess, startCli } from './support/cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

it('serves /healthz and /metrics on loopback after a run, and stops with the daemon', async () => {
  const db = await sqliteCampus(8);
  cleanups.push(() => db.close());
  const sim = await startSimulator({ photoCount: 8, seed: 1, unmatchedEvery: 9, imageBytes: 3_000 });
  cleanups.push(() => sim.close());
  // A schedule that will not tick during the test: the start-up run is the only one.
  const p: CliProcess = startCli(['schedule', '--cron', '0 0 1 1 *', '--run-at-start'], syncEnv(sim, db, { CLOUDCARD_SYNC_METRICS_PORT: '0' }));
  cleanups.push(async () => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  });
  await p.waitFor(/"msg":"run finished"/);
  const serving = p.jsonLines().find((l) => l.msg === 'serving /healthz and /metrics');
  const url = String(serving?.url);
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

  const health = await fetch(`${url}/healthz`);
  expect(health.status).toBe(200);
  const body = (await health.json()) as { ok: boolean; state: string; lastRun: { status: string; trigger: string }; nextRun: string };
  expect(body).toMatchObject({ ok: true, state: 'idle', lastRun: { status: 'ok', trigger: 'start' } });
  expect(Date.parse(body.nextRun)).toBeGreaterThan(Date.now());

  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/text\/plain/);
  const text = await res.text();
  expect(metric(text, 'cloudcard_sync_photos_total{outcome="stored"}')).toBe(8);
  expect(metric(text, 'cloudcard_sync_photos_total{outcome="left"}')).toBe(0);
  expect(metric(text, 'cloudcard_sync_photos_acknowledged_total')).toBe(8);
  expect(metric(text, 'cloudcard_sync_runs_total{status="ok"}')).toBe(1);
  expect(metric(text, 'cloudcard_sync_run_duration_seconds_count')).toBe(1);
  expect(metric(text, 'cloudcard_sync_run_in_progress')).toBe(0);
  const lastSuccess = metric(text, 'cloudcard_sync_last_success_timestamp_seconds') ?? 0;
  expect(Math.abs(lastSuccess - Date.now() / 1000)).toBeLessThan(30);
  expect((await fetch(`${url}/nope`)).status).toBe(404);

  p.child.kill('SIGTERM');
  expect((await p.exited).code).toBe(0);
  await expect(fetch(`${url}/healthz`)).rejects.toThrow();
});

it('is off by default', async () => {
  const db = await sqliteCampus(2);
  cleanups.push(() => db.close());
  const sim = await startSimulator({ photoCount: 2, seed: 1, imageBytes: 3_000 });
  cleanups.push(() => sim.close());
  const p = startCli(['schedule', '--cron', '0 0 1 1 *', '--run-at-start'], syncEnv(sim, db));
  cleanups.push(async () => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await p.exited;
  });
  await p.waitFor(/"msg":"run finished"/);
  p.child.kill('SIGTERM');
  expect((await p.exited).code).toBe(0);
  expect(p.output()).not.toMatch(/healthz/);
});
