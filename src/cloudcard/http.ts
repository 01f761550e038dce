/**
 * Retry and body-reading plumbing for the CloudCard client. Nothing here knows CloudCard's paths or
 * tokens: it decides *whether* and *when* to try again, and reads bodies without trusting their size.
 *
 * Which failures are worth another try:
 * - transport failures: connection refused/reset, socket hang up, a timeout (undici's fetch reports all of
 *   these as a TypeError "fetch failed"/"terminated" with a cause, or a TimeoutError DOMException);
 * - 429 and 5xx answers, and answers whose body was cut or garbled on the way (a proxy dropped it):
 *   the caller signals those by throwing RetryableError.
 * Everything else (4xx, a body over the size limit, a bug) fails at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryPolicy {
  /** Retries after the first attempt, so maxRetries 5 means at most 6 attempts. */
  maxRetries: number;
  /** The first retry waits up to baseMs, the next up to 2×baseMs, and so on (full jitter). */
  baseMs: number;
  /** No single wait exceeds this, including a server's Retry-After. */
  capMs: number;
}

/**
 * An answer that is worth trying again: 429, 5xx, or a body that arrived damaged. `retryAfterMs` is the
 * server's own wish (Retry-After), which beats our backoff.
 */
export class RetryableError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RetryableError';
  }
}

/** Thrown by withRetries when every attempt failed with something retryable; `lastError` says what. */
export class RetriesExhaustedError extends Error {
  constructor(
    readonly attempts: number,
    readonly lastError: unknown,
  ) {
    super(`${attempts} attempt(s) failed; last: ${describeFailure(lastError)}`);
    this.name = 'RetriesExhaustedError';
  }
}

/** A body longer than the caller allows. Never retried: the next answer would be just as big. */
export class BodyTooLargeError extends Error {
  constructor(
    readonly limit: number,
    /** Bytes seen before we stopped, or the declared Content-Length when we refused up front. */
    readonly seen: number,
    readonly declared: boolean,
  ) {
    super(declared ? `body of ${seen} bytes (Content-Length) exceeds the ${limit}-byte limit` : `body exceeds the ${limit}-byte limit (stopped after ${seen} bytes)`);
    this.name = 'BodyTooLargeError';
  }
}

/** Network codes (from Node sockets and undici) that mean "the connection failed; another may not". */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for a transport failure that a fresh attempt may not hit (see the module comment). */
export function isTransientNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return true;
  // fetch wraps every transport failure in a TypeError ("fetch failed" before the answer, "terminated"
  // while reading the body); the cause carries the socket-level code. Other TypeErrors are bugs: no retry.
  if (err instanceof TypeError && (err.message === 'fetch failed' || err.message === 'terminated')) return true;
  const code = errorCode(err) ?? errorCode(err.cause);
  if (code && TRANSIENT_CODES.has(code)) return true;
  return /socket hang up|other side closed/i.test(err.message);
}

/** One short line for an error: its message plus the socket-level code, with no stack. */
export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'timed out';
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const code = errorCode(err) ?? errorCode(cause);
  const detail = cause && cause.message !== err.message ? `: ${cause.message}` : '';
  return `${err.message}${detail}${code && !`${err.message}${detail}`.includes(code) ? ` (${code})` : ''}`;
}

/** Full-jitter exponential backoff: a random wait in [0, min(cap, base × 2^retry)). retry counts from 0. */
export function backoffDelayMs(retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/**
 * Parses Retry-After: either delta-seconds ("120") or an HTTP date. Returns milliseconds to wait (0 for a
 * date in the past), or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date always names its day or month; without letters, Date.parse would read "-5" as a year.
  if (!/[A-Za-z]/.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export interface RetryNotice {
  /** The retry about to happen, from 1. */
  retry: number;
  delayMs: number;
  error: unknown;
}

/**
 * Runs `attempt` until it returns, retrying transport failures and RetryableError per `policy`.
 * Anything else it throws passes straight through. When retries run out, throws RetriesExhaustedError.
 * `attempt` receives the attempt number (from 1), so a caller can tell a first try from a repeat.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  attempt: (attemptNumber: number) => Promise<T>,
  onRetry?: (notice: RetryNotice) => void,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const retryable = err instanceof RetryableError || isTransientNetworkError(err);
      if (!retryable) throw err;
      if (n > policy.maxRetries) throw new RetriesExhaustedError(n, err);
      const asked = err instanceof RetryableError ? err.retryAfterMs : undefined;
      const delayMs = asked !== undefined ? Math.min(asked, policy.capMs) : backoffDelayMs(n - 1, policy);
      onRetry?.({ retry: n, delayMs, error: err });
      if (delayMs > 0) await sleep(delayMs);
    }
  }
}

/**
 * Reads a whole response body into one Buffer, refusing more than `maxBytes`: up front when
 * Content-Length says so, otherwise as soon as the running total passes the limit. Stopping cancels
 * the stream, which makes undici drop the connection, so an oversized body costs us at most one chunk
 * beyond the limit. Chunks are kept as they arrive and joined once, at the known total length.
 * `onChunk` sees each chunk as it arrives (for hashing while streaming).
 */
export async function readBodyBounded(
  res: Response,
  maxBytes: number,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<Buffer> {
  const declared = declaredLength(res);
  if (declared !== undefined && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(maxBytes, declared, true);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new BodyTooLargeError(maxBytes, total, false);
      }
      onChunk?.(value);
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks, total);
}

/**
 * The Content-Length to hold the body to, or undefined when there is none we can check. With a
 * Content-Encoding the header counts compressed bytes while fetch hands us decoded ones, so it cannot
 * be compared.
 */
export function declaredLength(res: Response): number | undefined {
  const encoding = res.headers.get('content-encoding');
  if (encoding && encoding.toLowerCase() !== 'identity') return undefined;
  const header = res.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header.trim())) return undefined;
  return Number(header.trim());
}

/** Reads an error answer's body for its message, bounded and never failing: a broken body gives "". */
export async function readErrorText(res: Response, maxBytes = 64 * 1024): Promise<string> {
  try {
    return (await readBodyBounded(res, maxBytes)).toString('utf8');
  } catch {
    return '';
  }
}

/** Releases an answer we will not read, so its connection goes back to the pool or is closed. */
export async function discardBody(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}
