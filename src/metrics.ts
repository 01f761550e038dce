/**
 * The daemon's optional health and Prometheus endpoint (off unless CLOUDCARD_SYNC_METRICS_PORT is set).
 * It binds to loopback by default: metrics name no secrets, but they are nobody else's business either.
 * A registry of our own (not prom-client's global one) so that tests and a host process never share counters.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RunCounts } from './run-history.js';
import type { RunSummary } from './sync.js';

/** Run counts reported as photos by outcome (acknowledged is reported on its own: it overlaps the others). */
const OUTCOME_LABELS: Array<[keyof RunCounts, string]> = [
  ['stored', 'stored'],
  ['alreadyStored', 'already_stored'],
  ['superseded', 'superseded'],
  ['unmatched', 'unmatched'],
  ['held', 'held'],
  ['failed', 'failed'],
  ['left', 'left'],
];

export type RunStatus = 'ok' | 'partial' | 'stopped' | 'failed' | 'skipped_locked' | 'skipped_busy';

export class SyncMetrics {
  readonly registry = new Registry();
  private readonly photos = new Counter({ name: 'cloudcard_sync_photos_total', help: 'Photos handled, by outcome', labelNames: ['outcome'], registers: [this.registry] });
  private readonly acknowledged = new Counter({ name: 'cloudcard_sync_photos_acknowledged_total', help: 'Photos marked in CloudCard after their commit', registers: [this.registry] });
  private readonly runs = new Counter({ name: 'cloudcard_sync_runs_total', help: 'Scheduled ticks by result (skipped_* ticks did not run)', labelNames: ['status'], registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'cloudcard_sync_run_duration_seconds',
    help: 'Duration of runs that started',
    buckets: [1, 5, 15, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  private readonly lastDuration = new Gauge({ name: 'cloudcard_sync_last_run_duration_seconds', help: 'Duration of the last run', registers: [this.registry] });
  private readonly lastSuccess = new Gauge({
    name: 'cloudcard_sync_last_success_timestamp_seconds',
    help: 'Unix time the last run ended with every photo handled (0 = never since start)',
    registers: [this.registry],
  });
  private readonly running = new Gauge({ name: 'cloudcard_sync_run_in_progress', help: '1 while a run is going', registers: [this.registry] });

  constructor(opts: { processMetrics?: boolean } = {}) {
    this.lastSuccess.set(0);
    this.running.set(0);
    for (const [, label] of OUTCOME_LABELS) this.photos.inc({ outcome: label }, 0);
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cloudcard_sync_' });
  }

  runStarted(): void {
    this.running.set(1);
  }

  /** A run that returned a summary (ok, partial or stopped). */
  runFinished(summary: RunSummary, status: RunStatus): void {
    this.running.set(0);
    for (const [key, label] of OUTCOME_LABELS) if (summary.counts[key]) this.photos.inc({ outcome: label }, summary.counts[key]);
    if (summary.counts.acknowledged) this.acknowledged.inc(summary.counts.acknowledged);
    this.observe(summary.durationMs);
    this.runs.inc({ status });
    if (status === 'ok') this.lastSuccess.set(Date.now() / 1000);
  }

  /** A run that threw (CloudCard or database unreachable). */
  runFailed(durationMs: number): void {
    this.running.set(0);
    this.observe(durationMs);
    this.runs.inc({ status: 'failed' });
  }

  /** A tick that did not run: our own run was still going (busy), or another process held the lock. */
  tickSkipped(status: 'skipped_locked' | 'skipped_busy'): void {
    if (status === 'skipped_locked') this.running.set(0);
    this.runs.inc({ status });
  }

  private observe(durationMs: number): void {
    this.duration.observe(durationMs / 1000);
    this.lastDuration.set(durationMs / 1000);
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves GET /healthz (200 while the daemon is serving, 503 once it is stopping, JSON body) and GET /metrics
 * (Prometheus text format).
 */
export async function startMetricsServer(
  metrics: SyncMetrics,
  opts: { host: string; port: number; health: () => { ok: boolean; [k: string]: unknown } },
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const health = opts.health();
      res.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(health));
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
