/**
 * Structured logging: JSON lines for machines, a readable form on a terminal.
 * Secrets are redacted twice over: by key (pino's redact) and by value (every string that equals a
 * registered secret is replaced), because a token can turn up inside an error message or a URL.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

/**
 * Fields every log line written inside a run or a photo's processing carries (runId, photoId, version),
 * wherever the line comes from: the CloudCard client's retry warnings know nothing of runs, yet an
 * operator grepping for a photo id must find them.
 */
const logContext = new AsyncLocalStorage<Record<string, unknown>>();

/** Runs `fn` with `fields` added to every line logged inside it (nested contexts add up). */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return logContext.run({ ...logContext.getStore(), ...fields }, fn);
}

const secrets = new Set<string>();

/** Registers a value that must never appear in a log line, an error or a report. */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 6) secrets.add(value);
}

/** Replaces every registered secret in a string. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('[REDACTED]');
  return out;
}

/** Set by the progress bar while it is on screen, so a log line takes the bar's line and the bar moves below it. */
export const terminal: { beforeLine?: (() => void) | undefined; afterLine?: (() => void) | undefined } = {};

export type LogFormat = 'json' | 'pretty' | 'auto';

export interface LogOptions {
  level?: string;
  format?: LogFormat;
  /** Where lines go; defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true && !opts.destination);
  const base = {
    level: opts.level ?? 'info',
    base: undefined,
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['*.persistentAccessToken', '*.tokenValue', '*.authenticationToken', '*.password', '*.accessToken', '*["X-Auth-Token"]', '*.headers["x-auth-token"]'],
      censor: '[REDACTED]',
    },
    hooks: {
      // Value-based redaction: catches a token embedded in a message, an error or a connection string.
      streamWrite: (line: string) => (secrets.size ? redact(line) : line),
    },
    formatters: { level: (label: string) => ({ level: label }) },
    // A copy: pino merges each line's own fields into the object mixin returns.
    mixin: () => ({ ...logContext.getStore() }),
  };
  if (pretty) {
    // Formatted here, synchronously, rather than in pino-pretty's worker thread: lines then reach the
    // terminal in order with the progress bar and the final summary instead of after them.
    const prettify = prettyFactory({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' });
    const out = opts.destination ?? process.stdout;
    return pino(base, {
      write(line: string) {
        terminal.beforeLine?.();
        out.write(prettify(JSON.parse(line) as Record<string, unknown>));
        terminal.afterLine?.();
      },
    });
  }
  return pino(base, opts.destination ?? pino.destination({ fd: 1, sync: true }));
}

/** A logger that drops everything: for library use and tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
export type { Logger };
