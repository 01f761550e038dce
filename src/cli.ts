#!/usr/bin/env node
/**
 * The command-line entry: parses, delegates to a command in commands/, and turns errors into the exit
 * codes documented in README.md. Nothing else lives here.
 */
import { Command } from 'commander';
import { registerConsume } from './commands/consume.js';
import { registerCheck } from './commands/check.js';
import { registerDemo } from './commands/demo.js';
import { registerMigrate } from './commands/migrate.js';
import { registerRun } from './commands/run.js';
import { registerSchedule } from './commands/schedule.js';
import { registerStatus } from './commands/status.js';
import { registerExplain } from './commands/explain.js';
import { registerSimulate } from './commands/simulate.js';
import { EXIT, SyncError } from './errors.js';
import { redact } from './log.js';

const program = new Command()
  .name('cloudcard-sync')
  .description('Move approved ID-card photos from CloudCard into your campus database, safely and fast.')
  .showHelpAfterError();

registerRun(program);
registerCheck(program);
registerSchedule(program);
registerConsume(program);
registerStatus(program);
registerExplain(program);
registerMigrate(program);
registerDemo(program);
registerSimulate(program);

// `cloudcard-sync status | head` closes our stdout early: that is the reader's choice, not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const code = err instanceof SyncError ? err.exitCode : EXIT.INTERNAL;
  const message = err instanceof SyncError ? err.message : ((err as Error).stack ?? String(err));
  process.stderr.write(`cloudcard-sync: ${redact(message)}\n`);
  process.exitCode = code;
}
