/** `cloudcard-sync schedule`: the long-running daemon (see src/schedule.ts), with its optional metrics endpoint. */
import type { Command } from 'commander';
import { openJob, mappingFrom } from '../job.js';
import { startMetricsServer, SyncMetrics, type MetricsServer } from '../metrics.js';
import { stopOnSignals, withRunLock } from '../run-guard.js';
import { checkCronExpression, SyncDaemon } from '../schedule.js';
import { runSync } from '../sync.js';
import { loggerFrom, settingsFrom, withSyncOptions, type CommonFlags } from './common.js';

interface ScheduleFlags extends CommonFlags {
  cron?: string;
  runAtStart?: boolean;
  metricsPort?: string;
  stopTimeout?: string;
  migrate?: boolean;
}

export function registerSchedule(program: Command): void {
  withSyncOptions(
    program
      .command('schedule')
      .description('run as a daemon: a sync on every tick of a cron schedule, never two at once; stops gracefully on SIGTERM/SIGINT')
      .option('--cron <expression>', "cron expression, e.g. '0 2 * * *' nightly or '*/10 * * * *' (env CLOUDCARD_SYNC_SCHEDULE)")
      .option('--run-at-start', 'also run once right after starting (env CLOUDCARD_SYNC_RUN_AT_START, default true)')
      .option('--no-run-at-start', 'wait for the first tick')
      .option('--metrics-port <port>', 'serve /healthz and /metrics on this port (env CLOUDCARD_SYNC_METRICS_PORT; off by default)')
      .option('--stop-timeout <ms>', 'on SIGTERM, wait this long for photos in flight (env CLOUDCARD_SYNC_STOP_TIMEOUT_MS)')
      .option('--no-migrate', "do not create or upgrade the job's own tables first"),
  ).action(async (flags: ScheduleFlags) => {
    const settings = settingsFrom(flags, process.env, {
      schedule: flags.cron,
      runAtStart: flags.runAtStart,
      metricsPort: flags.metricsPort,
      stopTimeoutMs: flags.stopTimeout,
    });
    checkCronExpression(settings.schedule, flags.cron !== undefined ? '--cron' : 'CLOUDCARD_SYNC_SCHEDULE');
    const mapping = mappingFrom(settings);
    const logger = loggerFrom(settings);
    // Listen for signals before connecting, so a stop during start-up is not lost.
    const stop = stopOnSignals(logger);
    const job = await openJob(settings, mapping, logger, { migrate: flags.migrate !== false });
    const metrics = settings.metricsPort !== undefined ? new SyncMetrics({ processMetrics: true }) : undefined;
    const daemon = new SyncDaemon({
      expression: settings.schedule,
      runAtStart: settings.runAtStart,
      stopTimeoutMs: settings.stopTimeoutMs,
      logger,
      ...(metrics ? { metrics } : {}),
      run: (trigger, signal) => withRunLock(job.deps.knex, settings.jobSchema, () => runSync(job.deps, { trigger, signal })),
    });
    let server: MetricsServer | undefined;
    try {
      if (metrics && settings.metricsPort !== undefined) {
        server = await startMetricsServer(metrics, { host: settings.metricsHost, port: settings.metricsPort, health: () => daemon.health() });
        logger.info({ url: server.url }, 'serving /healthz and /metrics');
      }
      if (!stop.signal.aborted) daemon.start();
      const signal = await stop.requested;
      logger.info({ signal, stopTimeoutMs: settings.stopTimeoutMs }, 'stopping');
      const { finishedInTime } = await daemon.stop();
      if (!finishedInTime) {
        // The run is still inside CloudCard or database calls. Exiting drops its connections: uncommitted
        // transactions roll back, and committed-but-unacknowledged photos are acknowledged by the next run.
        logger.error({ stopTimeoutMs: settings.stopTimeoutMs }, 'the run did not finish within the stop timeout; exiting anyway');
        await server?.close();
        process.exit(0);
      }
    } finally {
      stop.dispose();
      await server?.close();
      await job.close();
    }
    logger.info('stopped');
  });
}
