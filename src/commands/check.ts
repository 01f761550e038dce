/**
 * `cloudcard-sync check --mapping FILE`: validates a mapping against the live database before the first run,
 * as a checklist (✓ pass, ! warning, ✗ failure, - not checked) or JSON. Needs no CloudCard token unless
 * --cloudcard asks to try the login too. Exit 0 when nothing failed (warnings allowed), 2 when a check failed,
 * 4 when the database cannot be reached.
 */
import type { Command } from 'commander';
import type { Knex } from 'knex';
import { CloudCardClient } from '../cloudcard/client.js';
import type { Mapping } from '../config/mapping.js';
import { requireAccessToken, type Settings } from '../config/settings.js';
import { DatabaseError, EXIT, SyncError } from '../errors.js';
import { mappingFrom, connectDatabase } from '../job.js';
import { redact, registerSecret } from '../log.js';
import { checkJobTables, checkTarget, databaseMessage, result, type CheckResult } from '../target/check.js';
import { maskUrl } from '../target/connection.js';
import { serverVersion } from '../target/introspect.js';
import { settingsFrom, withDatabaseOptions, withLogOptions, type CommonFlags } from './common.js';

export interface CheckReport {
  mapping: string | null;
  /** DATABASE_URL with the password masked. */
  database: string;
  ok: boolean;
  exitCode: number;
  checks: CheckResult[];
}

export interface CheckOptions {
  /** Also log in to CloudCard and list one page of photos. */
  cloudcard?: boolean;
}

export async function runCheck(settings: Settings, opts: CheckOptions = {}): Promise<CheckReport> {
  const checks: CheckResult[] = [];
  const database = maskUrl(settings.databaseUrl);
  let mapping: Mapping | undefined;
  try {
    mapping = mappingFrom(settings);
    const t = mapping.target;
    checks.push(result('mapping', 'pass', `${settings.mapping} loads: ${t.mode} into ${t.table}, key ${t.keyColumn} (${t.keyType}), blob ${t.blobColumn}`));
  } catch (err) {
    checks.push(result('mapping', 'fail', (err as Error).message));
  }

  let knex: Knex | undefined;
  // A URL we cannot even parse is a settings mistake (exit 2); a server that does not answer is exit 4.
  let unreachable = false;
  try {
    knex = await connectDatabase(settings, 3);
    checks.push(result('database', 'pass', `connected to ${database} (${await serverVersion(knex)})`));
  } catch (err) {
    const message = err instanceof SyncError ? err.message : `Cannot connect to the database at ${database}: ${databaseMessage(err)}`;
    unreachable = !(err instanceof SyncError) || err instanceof DatabaseError;
    checks.push(result('database', 'fail', message));
  }

  try {
    if (knex && mapping) checks.push(...(await checkTarget(knex, mapping, { jobSchema: settings.jobSchema })));
    // Without a mapping the job tables can still be looked at: they do not depend on it.
    else if (knex) checks.push(await checkJobTables(knex, settings.jobSchema));
  } finally {
    await knex?.destroy();
  }

  if (opts.cloudcard) checks.push(await checkCloudCard(settings, mapping));

  const failed = checks.some((c) => c.status === 'fail');
  const exitCode = unreachable ? EXIT.DATABASE_UNREACHABLE : failed ? EXIT.CONFIG : EXIT.OK;
  return { mapping: settings.mapping ?? null, database, ok: !failed, exitCode, checks };
}

/** Logs in with the persistent access token and lists one photo, so a wrong token or base URL shows now. */
async function checkCloudCard(settings: Settings, mapping: Mapping | undefined): Promise<CheckResult> {
  let client: CloudCardClient | undefined;
  try {
    const accessToken = requireAccessToken(settings);
    registerSecret(accessToken);
    // One retry: this is an interactive check, an answer now is worth more than persistence.
    client = new CloudCardClient({ baseUrl: settings.baseUrl, accessToken, timeoutMs: settings.timeoutMs, maxRetries: 1, legacyPaths: settings.legacyPaths });
    await client.login();
    const status = mapping?.statuses[0] ?? 'READY_FOR_DOWNLOAD';
    const photos = await client.listPhotos(status, 0, 1);
    return result('cloudcard', 'pass', `logged in at ${settings.baseUrl} and listed photos in ${status} (${photos.length ? 'at least one waiting' : 'none waiting'})`);
  } catch (err) {
    return result('cloudcard', 'fail', `${redact((err as Error).message)} (CLOUDCARD_BASE_URL is ${settings.baseUrl})`);
  } finally {
    await client?.logout();
  }
}

const MARK = { pass: '✓', warn: '!', fail: '✗', skip: '-' } as const;

export function formatReport(report: CheckReport): string {
  const width = Math.max(...report.checks.map((c) => c.title.length));
  const lines = [`Checking ${report.mapping ?? '(no mapping file)'} against ${report.database}`, ''];
  for (const c of report.checks) {
    // Long messages stay readable: continuation lines line up under the message's first word.
    const [first = '', ...rest] = c.message.split('\n');
    lines.push(`  ${MARK[c.status]} ${c.title.padEnd(width)}  ${first}`);
    for (const more of rest) lines.push(`  ${' '.repeat(width + 4)}${more.trim()}`);
  }
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  const warned = report.checks.filter((c) => c.status === 'warn').length;
  lines.push('');
  if (failed) lines.push(`${failed} check${failed === 1 ? '' : 's'} failed${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}: fix the ✗ items and run check again.`);
  else lines.push(`All checks passed${warned ? ` (${warned} warning${warned === 1 ? '' : 's'}: see the ! items)` : ''}.`);
  return `${lines.join('\n')}\n`;
}

export function registerCheck(program: Command): void {
  withLogOptions(
    withDatabaseOptions(
      program
        .command('check')
        .description('validate a mapping against the live database: table, columns, types, key, lookup query, job tables, write permission (all rolled back)')
        .option('-m, --mapping <file>', 'mapping file to check (env CLOUDCARD_SYNC_MAPPING)')
        .option('--base-url <url>', 'CloudCard API base URL for --cloudcard (env CLOUDCARD_BASE_URL)')
        .option('--cloudcard', 'also log in to CloudCard with CLOUDCARD_ACCESS_TOKEN and list one page of photos')
        .option('--json', 'print the results as JSON'),
    ),
  ).action(async (flags: CommonFlags & { cloudcard?: boolean; json?: boolean }) => {
    const settings = settingsFrom(flags);
    const report = await runCheck(settings, { cloudcard: flags.cloudcard === true });
    process.stdout.write(redact(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report)));
    process.exitCode = report.exitCode;
  });
}
