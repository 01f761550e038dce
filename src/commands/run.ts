/** `cloudcard-sync run`: one sync, then exit with a code a scheduler can act on. */
import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { JOB_TABLES } from '../target/job-tables.js';
import { openJob, mappingFrom } from '../job.js';
import { formatSummary } from '../report.js';
import { runSync, type RunSummary } from '../sync.js';
import { createProgress } from '../progress.js';
import { LOCKED_MESSAGE, stopOnSignals, withRunLock } from '../run-guard.js';
import { loggerFrom, settingsFrom, withSyncOptions, type CommonFlags } from './common.js';

interface RunFlags extends CommonFlags {
  once?: boolean;
  dryRun?: boolean;
  migrate?: boolean;
  progress?: boolean;
}

/**
 * Exit code for a finished run: 0 when every photo found ended stored and acknowledged, or was set
 * aside as the mapping asks (unmatched left or held); 1 when any was left by an error, marked FAILED, or
 * stored but not acknowledged.
 */
export function exitCodeFor(summary: RunSummary): number {
  const c = summary.counts;
  const storedNotAcknowledged = summary.problems.some((p) => p.code === 'ack-failed' || p.code === 'ack-conflict' || p.code === 'ack-not-found');
  return c.left + c.failed > 0 || storedNotAcknowledged ? EXIT.SOME_PHOTOS_FAILED : EXIT.OK;
}

export function registerRun(program: Command): void {
  withSyncOptions(
    program
      .command('run')
      .description('run one sync: store every ready photo, then mark it in CloudCard')
      .option('--once', 'run once and exit (the default for this command; `schedule` runs repeatedly)')
      .option('--dry-run', 'list, download and resolve, report what would be written and acknowledged; write and acknowledge nothing')
      .option('--no-migrate', "do not create or upgrade the job's own tables first")
      .option('--no-progress', 'no progress bar even on a terminal'),
  ).action(async (flags: RunFlags) => {
    const settings = settingsFrom(flags);
    const mapping = mappingFrom(settings);
    const logger = loggerFrom(settings);
    const job = await openJob(settings, mapping, logger, { migrate: flags.migrate !== false && !flags.dryRun });
    const progress = flags.progress === false ? undefined : createProgress();
    const stop = stopOnSignals(logger);
    try {
      // A dry run must not create the job's tables, so on a fresh database it runs without a ledger.
      const ledgerExists = await job.deps.knex.schema.withSchema(settings.jobSchema ?? '').hasTable(JOB_TABLES.ledger);
      const sync = () =>
        runSync(job.deps, {
          trigger: 'manual',
          dryRun: flags.dryRun ?? false,
          ledgerExists,
          signal: stop.signal,
          ...(progress ? { onProgress: progress.update } : {}),
        });
      // A dry run writes nothing, so it needs no lock and may run beside a real one.
      const guarded = flags.dryRun ? { locked: false as const, value: await sync() } : await withRunLock(job.deps.knex, settings.jobSchema, sync);
      progress?.stop();
      if (guarded.locked) {
        logger.warn(LOCKED_MESSAGE);
        process.stderr.write(`cloudcard-sync: ${LOCKED_MESSAGE}\n`);
        process.exitCode = EXIT.LOCKED;
        return;
      }
      process.stdout.write(`${formatSummary(guarded.value)}\n`);
      process.exitCode = exitCodeFor(guarded.value);
    } finally {
      stop.dispose();
      progress?.stop();
      await job.close();
    }
  });
}
