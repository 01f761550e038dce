/**
 * The cron daemon behind `cloudcard-sync schedule`: starts a run on every tick of a cron expression,
 * never two at once (a tick during a run is skipped and logged, and the database run lock keeps other
 * processes out), and stops gracefully: no new photos, in-flight ones committed or rolled back, within a bound.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { ConfigError, SyncError } from './errors.js';
import type { Logger } from './log.js';
import type { RunStatus, SyncMetrics } from './metrics.js';
import type { Guarded } from './run-guard.js';
import type { RunSummary } from './sync.js';

export type DaemonTrigger = 'schedule' | 'start';

/**
 * Throws a ConfigError naming `settingName` when node-cron cannot parse the expression. node-cron takes
 * five fields (minute first) or six (second first).
 */
export function checkCronExpression(expression: string, settingName: string): void {
  const result = cron.validateDetailed(expression.trim());
  if (result.valid) return;
  const details = result.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  throw new ConfigError(
    `${settingName}: "${expression}" is not a valid cron expression${details ? ` (${details})` : ''}. ` +
      "Use five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *' for 02:00 every night or '*/10 * * * *' for every 10 minutes; a sixth leading field means seconds.",
  );
}

export interface DaemonOptions {
  expression: string;
  runAtStart: boolean;
  /** How long stop() waits for the run in flight before giving up on it. */
  stopTimeoutMs: number;
  /** IANA time zone for the cron expression; the machine's own when unset. */
  timezone?: string;
  logger: Logger;
  metrics?: SyncMetrics;
  /** One run, holding the run lock; `{ locked: true }` when another process holds it. */
  run(trigger: DaemonTrigger, signal: AbortSignal): Promise<Guarded<RunSummary>>;
}

export interface DaemonHealth {
  ok: boolean;
  state: 'idle' | 'running' | 'stopping';
  schedule: string;
  nextRun: string | null;
  lastRun: { trigger: DaemonTrigger; status: RunStatus; endedAt: string } | null;
  lastSuccessAt: string | null;
  [k: string]: unknown;
}

export class SyncDaemon {
  private task: ScheduledTask | undefined;
  private current: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private lastRun: DaemonHealth['lastRun'] = null;
  private lastSuccessAt: string | null = null;

  constructor(private readonly opts: DaemonOptions) {}

  start(): void {
    const log = this.opts.logger;
    this.task = cron.schedule(this.opts.expression.trim(), () => void this.tick('schedule'), {
      name: 'cloudcard-sync',
      ...(this.opts.timezone ? { timezone: this.opts.timezone } : {}),
      // Overlap is handled here (and logged); node-cron only has to fire.
      noOverlap: false,
      logger: {
        info: (m) => log.debug({ component: 'node-cron' }, m),
        warn: (m) => log.warn({ component: 'node-cron' }, m),
        error: (m, err) => log.error({ component: 'node-cron', err }, String(m)),
        debug: (m) => log.debug({ component: 'node-cron' }, String(m)),
      },
    });
    log.info({ schedule: this.opts.expression, nextRun: this.task.getNextRun()?.toISOString() ?? null, runAtStart: this.opts.runAtStart }, 'scheduler started');
    if (this.opts.runAtStart) void this.tick('start');
  }

  /** Starts a run unless one is going or the daemon is stopping. Resolves when that run (if any) ends. */
  tick(trigger: DaemonTrigger): Promise<void> {
    const log = this.opts.logger;
    if (this.abort.signal.aborted) return Promise.resolve();
    if (this.current) {
      log.warn({ trigger }, 'tick skipped: the previous run is still going');
      this.opts.metrics?.tickSkipped('skipped_busy');
      return Promise.resolve();
    }
    const run = this.runOnce(trigger).finally(() => {
      this.current = undefined;
      const next = this.task?.getNextRun();
      if (!this.abort.signal.aborted && next) log.debug({ nextRun: next.toISOString() }, 'waiting for the next tick');
    });
    this.current = run;
    return run;
  }

  private async runOnce(trigger: DaemonTrigger): Promise<void> {
    const log = this.opts.logger;
    const metrics = this.opts.metrics;
    const started = Date.now();
    metrics?.runStarted();
    try {
      const result = await this.opts.run(trigger, this.abort.signal);
      if (result.locked) {
        metrics?.tickSkipped('skipped_locked');
        log.warn({ trigger }, 'tick skipped: another instance is running against this database');
        return;
      }
      const status = result.value.status;
      metrics?.runFinished(result.value, status);
      this.lastRun = { trigger, status, endedAt: new Date().toISOString() };
      if (status === 'ok') this.lastSuccessAt = this.lastRun.endedAt;
    } catch (err) {
      // A run that could not reach CloudCard or the database: the next tick tries again. Logged with its
      // exit code so an operator can tell the two apart in the journal.
      metrics?.runFailed(Date.now() - started);
      this.lastRun = { trigger, status: 'failed', endedAt: new Date().toISOString() };
      log.error({ err, exitCode: err instanceof SyncError ? err.exitCode : undefined, trigger }, 'run failed; the next tick tries again');
    }
  }

  /**
   * Stops ticking, asks the run in flight to stop taking photos, and waits up to stopTimeoutMs for it.
   * Returns whether it finished in time (when it did not, its uncommitted transactions roll back as the
   * process exits and its committed photos are acknowledged by the next run).
   */
  async stop(): Promise<{ finishedInTime: boolean }> {
    this.abort.abort();
    await this.task?.destroy();
    const running = this.current;
    if (!running) return { finishedInTime: true };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.opts.stopTimeoutMs)));
    const result = await Promise.race([running.then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    return { finishedInTime: result === 'done' };
  }

  health(): DaemonHealth {
    const stopping = this.abort.signal.aborted;
    return {
      ok: !stopping,
      state: stopping ? 'stopping' : this.current ? 'running' : 'idle',
      schedule: this.opts.expression,
      nextRun: stopping ? null : (this.task?.getNextRun()?.toISOString() ?? null),
      lastRun: this.lastRun,
      lastSuccessAt: this.lastSuccessAt,
    };
  }
}
