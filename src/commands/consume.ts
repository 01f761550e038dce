/**
 * `cloudcard-sync consume`: status queue mode. One long run that takes photos from the SQS queue as
 * CloudCard announces them, until SIGINT or SIGTERM; then it takes no new message, lets the photos in
 * flight finish (commit, acknowledge, delete their messages) and exits 0. Start as many as you like, on
 * as many machines: they share the queue (no run lock), and the ledger makes a redelivery harmless.
 */
import type { Command } from 'commander';
import { ConfigError, EXIT } from '../errors.js';
import { mappingFrom, openJob } from '../job.js';
import { stopOnSignals } from '../run-guard.js';
import { formatSummary } from '../report.js';
import { createSqsClient, QueueSource } from '../sources/queue.js';
import { runSync } from '../sync.js';
import { loggerFrom, settingsFrom, withSyncOptions, type CommonFlags } from './common.js';

interface ConsumeFlags extends CommonFlags {
  queueUrl?: string;
  messageType?: string;
  waitSeconds?: string;
  migrate?: boolean;
}

export function registerConsume(program: Command): void {
  withSyncOptions(
    program
      .command('consume')
      .description('status queue mode: store photos as CloudCard announces them on an SQS queue, until stopped (SIGINT/SIGTERM)')
      .option('--queue-url <url>', 'the SQS queue CloudCard sends to (env CLOUDCARD_SYNC_QUEUE_URL)')
      .option('--message-type <type>', 'auto|FULL|ID: what the messages carry (env CLOUDCARD_SYNC_QUEUE_MESSAGE_TYPE)')
      .option('--wait-seconds <n>', 'long-polling wait, 1..20 (env CLOUDCARD_SYNC_QUEUE_WAIT_SECONDS)')
      .option('--no-migrate', "do not create or upgrade the job's own tables first"),
  ).action(async (flags: ConsumeFlags) => {
    // The queue flags go in as the environment variables they stand for: one parser, one set of messages.
    const settings = settingsFrom(flags, {
      ...process.env,
      ...(flags.queueUrl ? { CLOUDCARD_SYNC_QUEUE_URL: flags.queueUrl } : {}),
      ...(flags.messageType ? { CLOUDCARD_SYNC_QUEUE_MESSAGE_TYPE: flags.messageType } : {}),
      ...(flags.waitSeconds ? { CLOUDCARD_SYNC_QUEUE_WAIT_SECONDS: flags.waitSeconds } : {}),
    });
    if (!settings.queueUrl) {
      throw new ConfigError('No status queue given: pass --queue-url https://sqs.<region>.amazonaws.com/<account>/<queue> or set CLOUDCARD_SYNC_QUEUE_URL (see README "Status queue mode").');
    }
    const mapping = mappingFrom(settings);
    const logger = loggerFrom(settings);
    const job = await openJob(settings, mapping, logger, { migrate: flags.migrate !== false });
    const sqs = createSqsClient({ queueUrl: settings.queueUrl, endpoint: settings.queueEndpoint });
    const stop = stopOnSignals(logger);
    // Photos in flight that do not finish within the stop timeout are given up: their transactions roll
    // back and SQS redelivers their messages.
    void stop.requested.then(() => {
      setTimeout(() => {
        logger.error({ stopTimeoutMs: settings.stopTimeoutMs }, 'photos in flight did not finish in time: exiting; their messages will be redelivered');
        process.exit(EXIT.SOME_PHOTOS_FAILED);
      }, settings.stopTimeoutMs).unref();
    });
    try {
      const source = new QueueSource({
        sqs,
        queueUrl: settings.queueUrl,
        client: job.deps.client,
        statuses: mapping.statuses,
        messageType: settings.queueMessageType,
        concurrency: job.deps.concurrency,
        waitTimeSeconds: settings.queueWaitSeconds,
        logger,
      });
      const summary = await runSync(job.deps, { trigger: 'queue', signal: stop.signal, source });
      process.stdout.write(`${formatSummary(summary)}\n`);
      // A consumer ends only when told to; photos left along the way are redelivered, so they are not failures of this process.
      process.exitCode = EXIT.OK;
    } finally {
      stop.dispose();
      sqs.destroy();
      await job.close();
    }
  });
}
