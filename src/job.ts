/**
 * The composition root: settings + mapping → a connected database, a CloudCard client and a writer,
 * ready for runSync. Every command that touches both ends builds them here, one way.
 */
import type { Knex } from 'knex';
import { CloudCardClient } from './cloudcard/client.js';
import { loadMapping, type Mapping } from './config/mapping.js';
import { requireAccessToken, type Settings } from './config/settings.js';
import { ConfigError, DatabaseError } from './errors.js';
import { registerSecret, type Logger } from './log.js';
import type { SyncDeps } from './sync.js';
import { dialectName, maskUrl, openDatabase } from './target/connection.js';
import { checkJobSchema } from './target/job-tables.js';
import { migrateLatest } from './target/migrate.js';
import { PhotoWriter } from './target/writer.js';

export function mappingFrom(settings: Settings): Mapping {
  if (!settings.mapping) {
    throw new ConfigError('No mapping file given: pass --mapping mappings/<your-campus>.yaml or set CLOUDCARD_SYNC_MAPPING. Examples are in mappings/.');
  }
  return loadMapping(settings.mapping);
}

/** Opens the database and proves the connection works, with a message that names the database but not its password. */
export async function connectDatabase(settings: Settings, poolMax: number): Promise<Knex> {
  registerDatabasePassword(settings.databaseUrl);
  const knex = openDatabase(settings.databaseUrl, { poolMax });
  checkJobSchema(knex.client.config.client as string, settings.jobSchema);
  try {
    await knex.raw(dialectName(knex) === 'oracle' ? 'select 1 from dual' : 'select 1');
  } catch (err) {
    await knex.destroy().catch(() => undefined);
    throw new DatabaseError(`Cannot connect to the database at ${maskUrl(settings.databaseUrl)}: ${(err as Error).message}`, { cause: err });
  }
  return knex;
}

function registerDatabasePassword(url: string): void {
  try {
    const parsed = new URL(url);
    if (parsed.password) registerSecret(decodeURIComponent(parsed.password));
  } catch {
    // not a URL (a SQLite path): no password to hide
  }
}

export interface Job {
  deps: SyncDeps;
  close(): Promise<void>;
}

export async function openJob(settings: Settings, mapping: Mapping, logger: Logger, opts: { migrate?: boolean } = {}): Promise<Job> {
  const accessToken = requireAccessToken(settings);
  registerSecret(accessToken);
  // Each photo in flight holds a connection for its transaction; the run lock and the history writer need one more each.
  const knex = await connectDatabase(settings, settings.concurrency + 3);
  try {
    if (opts.migrate !== false) await migrateLatest(knex, settings.jobSchema);
    const writer = new PhotoWriter({
      knex,
      target: mapping.target,
      jobSchema: settings.jobSchema,
      ...(mapping.studentKey.lookup ? { lookupSql: mapping.studentKey.lookup.sql } : {}),
    });
    const client = new CloudCardClient({
      baseUrl: settings.baseUrl,
      accessToken,
      timeoutMs: settings.timeoutMs,
      maxRetries: settings.maxRetries,
      legacyPaths: settings.legacyPaths,
      logger,
    });
    return {
      deps: { client, knex, writer, mapping, jobSchema: settings.jobSchema, concurrency: settings.concurrency, pageSize: settings.pageSize, logger },
      close: () => knex.destroy(),
    };
  } catch (err) {
    await knex.destroy();
    throw err;
  }
}
