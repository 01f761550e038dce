/** Options shared by the commands, and how they become Settings (flags override environment variables). */
import type { Command } from 'commander';
import { loadSettings, type Settings, type SettingsOverrides } from '../config/settings.js';
import { createLogger, type Logger } from '../log.js';

export interface CommonFlags {
  mapping?: string;
  databaseUrl?: string;
  baseUrl?: string;
  concurrency?: string;
  jobSchema?: string;
  logLevel?: string;
  logFormat?: string;
}

export function withDatabaseOptions(cmd: Command): Command {
  return cmd
    .option('--database-url <url>', 'target database (env DATABASE_URL), e.g. postgres://user@host/db, sqlite:./campus.sqlite')
    .option('--job-schema <name>', "schema for the job's own tables (env CLOUDCARD_SYNC_SCHEMA)");
}

export function withLogOptions(cmd: Command): Command {
  return cmd
    .option('--log-level <level>', 'trace|debug|info|warn|error|silent (env LOG_LEVEL)')
    .option('--log-format <format>', 'auto|json|pretty; auto is pretty on a terminal, JSON lines otherwise (env LOG_FORMAT)');
}

export function withSyncOptions(cmd: Command): Command {
  return withLogOptions(
    withDatabaseOptions(
      cmd
        .option('-m, --mapping <file>', 'mapping file for your schema (env CLOUDCARD_SYNC_MAPPING)')
        .option('--base-url <url>', 'CloudCard API base URL (env CLOUDCARD_BASE_URL)')
        .option('-c, --concurrency <n>', 'photos in flight at once (env CLOUDCARD_SYNC_CONCURRENCY)'),
    ),
  );
}

/** `extra` carries a command's own flags (e.g. `schedule --cron`) under their setting names. */
export function settingsFrom(flags: CommonFlags, env: NodeJS.ProcessEnv = process.env, extra: SettingsOverrides = {}): Settings {
  const overrides: SettingsOverrides = {
    ...extra,
    mapping: flags.mapping,
    databaseUrl: flags.databaseUrl,
    baseUrl: flags.baseUrl,
    concurrency: flags.concurrency,
    jobSchema: flags.jobSchema,
    logLevel: flags.logLevel,
    logFormat: flags.logFormat,
  };
  return loadSettings(env, overrides);
}

export function loggerFrom(settings: Settings): Logger {
  return createLogger({ level: settings.logLevel, format: settings.logFormat });
}
