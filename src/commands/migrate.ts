/** `cloudcard-sync migrate`: create or upgrade (or with --rollback, remove) the job's own tables. */
import type { Command } from 'commander';
import { connectDatabase } from '../job.js';
import { migrateLatest, migrateRollbackAll, migrationStatus } from '../target/migrate.js';
import { settingsFrom, withDatabaseOptions, type CommonFlags } from './common.js';

export function registerMigrate(program: Command): void {
  withDatabaseOptions(
    program
      .command('migrate')
      .description("create or upgrade the job's own tables (ledger, run history) in the target database")
      .option('--rollback', "remove the job's own tables (all migrations down)")
      .option('--status', 'show which migrations have run'),
  ).action(async (flags: CommonFlags & { rollback?: boolean; status?: boolean }) => {
    const settings = settingsFrom(flags);
    // One connection waits its turn (the migration lock), the others run the migrations.
    const knex = await connectDatabase(settings, 4);
    try {
      if (flags.status) {
        const s = await migrationStatus(knex, settings.jobSchema);
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
      } else if (flags.rollback) {
        const done = await migrateRollbackAll(knex, settings.jobSchema);
        process.stdout.write(done.length ? `Rolled back: ${done.join(', ')}\n` : 'Nothing to roll back.\n');
      } else {
        const done = await migrateLatest(knex, settings.jobSchema);
        process.stdout.write(done.length ? `Applied: ${done.join(', ')}\n` : 'Already up to date.\n');
      }
    } finally {
      await knex.destroy();
    }
  });
}
