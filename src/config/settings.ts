/**
 * Runtime settings: environment variables, overridden by command-line flags. Secrets (the persistent
 * access token, database passwords inside DATABASE_URL) come from the environment only.
 * README.md "Configuration reference" lists every setting; keep it in step with SETTINGS below.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const intSetting = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const boolSetting = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');

/** Setting name → [environment variable, schema]. One table, so docs, parsing and errors agree. */
export const SETTINGS = {
  baseUrl: ['CLOUDCARD_BASE_URL', z.url().default('https://api.onlinephotosubmission.com/api')],
  accessToken: ['CLOUDCARD_ACCESS_TOKEN', z.string().min(1).optional()],
  legacyPaths: ['CLOUDCARD_LEGACY_PATHS', boolSetting.default(false)],
  databaseUrl: ['DATABASE_URL', z.string().min(1).default('sqlite:./cloudcard-sync.sqlite')],
  jobSchema: ['CLOUDCARD_SYNC_SCHEMA', z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).optional()],
  mapping: ['CLOUDCARD_SYNC_MAPPING', z.string().min(1).optional()],
  concurrency: ['CLOUDCARD_SYNC_CONCURRENCY', intSetting(1, 256).default(16)],
  pageSize: ['CLOUDCARD_SYNC_PAGE_SIZE', intSetting(1, 1000).default(1000)],
  timeoutMs: ['CLOUDCARD_SYNC_TIMEOUT_MS', intSetting(1000, 600_000).default(30_000)],
  maxRetries: ['CLOUDCARD_SYNC_MAX_RETRIES', intSetting(0, 20).default(5)],
  schedule: ['CLOUDCARD_SYNC_SCHEDULE', z.string().min(1).default('*/10 * * * *')],
  runAtStart: ['CLOUDCARD_SYNC_RUN_AT_START', boolSetting.default(true)],
  stopTimeoutMs: ['CLOUDCARD_SYNC_STOP_TIMEOUT_MS', intSetting(1000, 3_600_000).default(60_000)],
  metricsPort: ['CLOUDCARD_SYNC_METRICS_PORT', intSetting(0, 65535).optional()],
  metricsHost: ['CLOUDCARD_SYNC_METRICS_HOST', z.string().min(1).default('127.0.0.1')],
  logLevel: ['LOG_LEVEL', z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')],
  logFormat: ['LOG_FORMAT', z.enum(['auto', 'json', 'pretty']).default('auto')],
  // Status queue mode (`consume`). Region and credentials come from the standard AWS chain; the queue URL names its region.
  queueUrl: ['CLOUDCARD_SYNC_QUEUE_URL', z.url().optional()],
  /** The variable the AWS SDK itself reads; passed on explicitly so the queue URL's host does not override it. */
  queueEndpoint: ['AWS_ENDPOINT_URL_SQS', z.url().optional()],
  queueMessageType: ['CLOUDCARD_SYNC_QUEUE_MESSAGE_TYPE', z.enum(['auto', 'FULL', 'ID']).default('auto')],
  queueWaitSeconds: ['CLOUDCARD_SYNC_QUEUE_WAIT_SECONDS', intSetting(1, 20).default(20)],
} as const;

type SettingsShape = { [K in keyof typeof SETTINGS]: (typeof SETTINGS)[K][1] };
export type Settings = { [K in keyof SettingsShape]: z.output<SettingsShape[K]> };
export type SettingsOverrides = { [K in keyof Settings]?: unknown };

/** Reads settings from `env`, with `overrides` (command-line flags) taking precedence. Errors name the variable or flag. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env, overrides: SettingsOverrides = {}): Settings {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, [envName, schema]] of Object.entries(SETTINGS) as Array<[keyof Settings, readonly [string, z.ZodType]]>) {
    const fromFlag = overrides[key] !== undefined;
    const rawEnv = env[envName];
    const raw = fromFlag ? overrides[key] : rawEnv === '' ? undefined : rawEnv;
    const parsed = schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else {
      // Never echo the value of the token: a mistyped secret is still a secret.
      const shown = envName === 'CLOUDCARD_ACCESS_TOKEN' || envName === 'DATABASE_URL' ? '' : ` (got "${String(raw)}")`;
      problems.push(`  ${fromFlag ? `--${key}` : envName}: ${parsed.error.issues[0]?.message ?? 'invalid'}${shown}`);
    }
  }
  if (problems.length) throw new ConfigError(`Invalid settings:\n${problems.join('\n')}`);
  return out as Settings;
}

/** Requires the persistent access token, with a message that says how to provide it. */
export function requireAccessToken(settings: Settings): string {
  if (!settings.accessToken) {
    throw new ConfigError(
      'CLOUDCARD_ACCESS_TOKEN is not set. Create a persistent access token for a CloudCard service account ' +
        '(Settings → Integrations in CloudCard) and put it in the environment, e.g. in the systemd unit\'s EnvironmentFile.',
    );
  }
  return settings.accessToken;
}
