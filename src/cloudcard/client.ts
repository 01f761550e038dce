/**
 * The CloudCard API client: session tokens, photo listing, image bytes, status changes.
 *
 * What it guarantees to its callers:
 * - Neither the persistent access token nor a session token ever appears in a log line or an error
 *   (both are registered with the log redactor the moment we hold them, and every message we build from
 *   a server's answer passes through redact() as well).
 * - A 401 costs one re-login, shared by every call that hit it at the same time, then one retry.
 * - Transport failures, 429 and 5xx are retried with capped, jittered exponential backoff (http.ts);
 *   other 4xx answers are not.
 * - Every answer body is size-bounded and parsed loosely: unknown fields are ignored, a list element
 *   without an id is dropped with a warning instead of failing the whole page.
 * - Image bytes are fetched without any CloudCard credentials (they live on a third-party host),
 *   hashed while they stream in, and checked before anyone stores them (image.ts).
 */
import { createHash } from 'node:crypto';
import { CloudCardError, PhotoError } from '../errors.js';
import { redact, registerSecret, silentLogger, type Logger } from '../log.js';
import { checkImage, type ImageContentType, type ImageType } from './image.js';
import {
  BodyTooLargeError,
  RetriesExhaustedError,
  RetryableError,
  declaredLength,
  describeFailure,
  discardBody,
  isTransientNetworkError,
  parseRetryAfter,
  readBodyBounded,
  readErrorText,
  withRetries,
  type RetryNotice,
  type RetryPolicy,
} from './http.js';
import type { Person, Photo } from './types.js';

export interface CloudCardClientOptions {
  /** e.g. https://api.onlinephotosubmission.com/api ; a trailing slash is tolerated. */
  baseUrl: string;
  /** The persistent access token (secret). It is only ever sent to mint session tokens. */
  accessToken: string;
  /** Per request, covering the answer's body too. Default 30 s. */
  timeoutMs?: number;
  /** Retries for network errors, 429 and 5xx. Default 5. */
  maxRetries?: number;
  /** First backoff step; later ones double, with full jitter, capped at 30 s. Default 500 ms. */
  retryBaseMs?: number;
  userAgent?: string;
  logger?: Logger;
  /** Legacy paths (/photos, /authenticationTokens, /people/me/logout) for older/self-hosted instances; default false. */
  legacyPaths?: boolean;
}

export interface DownloadedImage {
  bytes: Buffer;
  contentType: ImageContentType;
  /** Hex SHA-256 of bytes, computed once here while streaming. */
  sha256: string;
  url: string;
}

export type SetStatusResult = { kind: 'ok'; photo: Photo } | { kind: 'conflict'; message: string } | { kind: 'not-found' };

export interface DownloadOptions {
  maxBytes: number;
  allowedTypes?: Array<ImageType>;
}

/** A photo list of 1000 lightweight photos is a few MB; 64 MB means something is badly wrong. */
const LIST_MAX_BYTES = 64 * 1024 * 1024;
/** One photo, one person, one token answer. */
const OBJECT_MAX_BYTES = 8 * 1024 * 1024;
const BACKOFF_CAP_MS = 30_000;

interface ApiPaths {
  session: string;
  logout: string;
  photo: string;
  person: string;
}
const CURRENT_PATHS: ApiPaths = { session: '/authentication-token', logout: '/person/me/logout', photo: '/photo', person: '/person' };
const LEGACY_PATHS: ApiPaths = { session: '/authenticationTokens', logout: '/people/me/logout', photo: '/photos', person: '/person' };

/** Statuses whose reason CloudCard takes as a query parameter, shown to the card office. */
const REASON_PARAMETER: Record<string, string> = { ON_HOLD: 'onHoldReason', FAILED: 'failedReason' };

interface ApiCall {
  method: 'GET' | 'POST' | 'PUT';
  /** Without the query string: this is what error messages and logs name. */
  path: string;
  query?: Record<string, string | number>;
  json?: unknown;
  /** Limit for a 2xx body; error bodies are read only up to 64 KB, for their message. */
  maxBytes: number;
}

interface ApiAnswer {
  status: number;
  /** The body of a 2xx answer; for any other status, its first 64 KB at most (possibly empty). */
  body: Buffer;
}

/** Returned by an authenticated exchange that got 401, so the caller can re-login and repeat it. */
const UNAUTHORIZED = Symbol('unauthorized');

/** The body of a bytes download was cut short: worth retrying, and named "truncated" if it never comes whole. */
class TruncatedBodyError extends RetryableError {}

export class CloudCardClient {
  readonly stats = { requests: 0, retries: 0, relogins: 0, bytesDownloaded: 0 };

  private readonly baseUrl: string;
  private readonly accessToken: string;
  private readonly timeoutMs: number;
  private readonly policy: RetryPolicy;
  private readonly userAgent: string;
  private readonly log: Logger;
  private readonly paths: ApiPaths;

  private sessionToken: string | undefined;
  /** The login in progress, shared by everyone who needs a session meanwhile (single flight). */
  private pendingLogin: Promise<string> | undefined;

  constructor(opts: CloudCardClientOptions) {
    registerSecret(opts.accessToken);
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.accessToken = opts.accessToken;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.policy = { maxRetries: opts.maxRetries ?? 5, baseMs: opts.retryBaseMs ?? 500, capMs: BACKOFF_CAP_MS };
    this.userAgent = opts.userAgent ?? 'cloudcard-sync';
    this.log = (opts.logger ?? silentLogger).child({ component: 'cloudcard' });
    this.paths = opts.legacyPaths ? LEGACY_PATHS : CURRENT_PATHS;
  }

  /** Gets a session token from the persistent access token, unless we already hold one. */
  async login(): Promise<void> {
    await this.currentSession();
  }

  /**
   * Ends the session so tokens do not pile up on CloudCard's side. Never throws: at the end of a run a
   * failed logout is not worth failing for (the token expires on its own), so it is only logged.
   */
  async logout(): Promise<void> {
    const token = this.sessionToken;
    if (!token) return;
    this.sessionToken = undefined;
    const call: ApiCall = { method: 'POST', path: this.paths.logout, json: { authenticationToken: token }, maxBytes: OBJECT_MAX_BYTES };
    try {
      // One retry at most: nobody waits on a logout, and CloudCard being down must not hold up the exit.
      const outcome = await this.exchange(call, token, (a) => {
        if (a.status >= 300) throw this.unexpected(call, a);
      }, { ...this.policy, maxRetries: Math.min(1, this.policy.maxRetries) });
      // 401: the session was already gone, which is what we wanted.
      if (outcome !== UNAUTHORIZED) this.log.debug('logged out of CloudCard');
    } catch (err) {
      this.log.warn({ reason: redact(describeFailure(err)) }, 'CloudCard logout failed; the session token will expire on its own');
    }
  }

  /** One page of photos in one status. A page shorter than `max` is the last. */
  async listPhotos(status: string, offset: number, max: number): Promise<Photo[]> {
    const call: ApiCall = { method: 'GET', path: this.paths.photo, query: { status, offset, max }, maxBytes: LIST_MAX_BYTES };
    const { value: items } = await this.authorized(call, (a) => {
      if (a.status !== 200) throw this.unexpected(call, a);
      const data = parseJsonBody(a.body);
      if (!Array.isArray(data)) throw new RetryableError(`CloudCard answered with JSON that is not an array (${describeJsonType(data)})`);
      return data as unknown[];
    });
    const photos: Photo[] = [];
    items.forEach((item, index) => {
      if (hasNumericId(item)) photos.push(item as Photo);
      else this.log.warn({ status, offset, index }, 'CloudCard listed an element without a numeric id; skipping it');
    });
    return photos;
  }

  /** One photo in full, or null if CloudCard does not know it. */
  async getPhoto(id: number): Promise<Photo | null> {
    const call: ApiCall = { method: 'GET', path: `${this.paths.photo}/${id}`, maxBytes: OBJECT_MAX_BYTES };
    const { value } = await this.authorized(call, (a) => {
      if (a.status === 404) return null;
      if (a.status !== 200) throw this.unexpected(call, a);
      const data = parseJsonBody(a.body);
      if (!hasNumericId(data)) throw new RetryableError(`CloudCard answered with JSON that is not a photo (${describeJsonType(data)})`);
      return data as Photo;
    });
    return value;
  }

  /** One person by the institution's identifier (or e-mail), or null if there is none. */
  async getPerson(identifier: string, findBy: 'identifier' | 'email' = 'identifier'): Promise<Person | null> {
    const call: ApiCall = {
      method: 'GET',
      path: `${this.paths.person}/${encodeURIComponent(identifier)}`,
      query: { findBy },
      maxBytes: OBJECT_MAX_BYTES,
    };
    const { value } = await this.authorized(call, (a) => {
      if (a.status === 404) return null;
      if (a.status !== 200) throw this.unexpected(call, a);
      const data = parseJsonBody(a.body);
      if (!isObject(data)) throw new RetryableError(`CloudCard answered with JSON that is not a person (${describeJsonType(data)})`);
      return data as Person;
    });
    return value;
  }

  /**
   * Downloads and checks a photo's image. The bytes live on object storage, not on CloudCard's API host,
   * so this request carries no X-Auth-Token. Throws PhotoError (see the codes below); never a token.
   */
  async downloadBytes(photo: Photo, opts: DownloadOptions): Promise<DownloadedImage> {
    const url = photo.links?.bytes ?? photo.externalURL;
    if (!url) {
      throw new PhotoError(`photo ${photo.id}: CloudCard gave no URL for the image (links.bytes and externalURL are both empty)`, 'no-bytes-url', false);
    }
    let where: string;
    try {
      // Only origin and path go into messages: a signed storage URL carries its credentials in the query.
      const parsed = new URL(url);
      where = `${parsed.origin}${parsed.pathname}`;
    } catch {
      throw new PhotoError(`photo ${photo.id}: the image URL CloudCard gave is not a valid URL`, 'no-bytes-url', false);
    }

    try {
      return await withRetries(
        this.policy,
        () => this.downloadOnce(photo.id, url, where, opts),
        (notice) => this.noteRetry('GET', where, notice),
      );
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        const size = err.declared ? `Content-Length says ${err.seen} bytes` : `stopped after ${err.seen} bytes`;
        throw new PhotoError(`photo ${photo.id}: image is larger than the ${opts.maxBytes}-byte limit (${size})`, 'too-large', false);
      }
      if (err instanceof RetriesExhaustedError) {
        const truncated = err.lastError instanceof TruncatedBodyError;
        throw new PhotoError(
          redact(`photo ${photo.id}: image download from ${where} failed after ${err.attempts} attempts: ${describeFailure(err.lastError)}`),
          truncated ? 'truncated' : 'download-failed',
          true,
        );
      }
      throw err;
    }
  }

  /**
   * Sets a photo's status; with `version`, CloudCard refuses the change if the photo changed since it was
   * read, which comes back as `conflict` (re-read the photo and decide again).
   *
   * A PUT whose answer was lost (the connection dropped after the request went out) is retried. If the
   * first PUT had in fact committed, the retry meets a bumped version and gets a conflict although the
   * change we wanted is in place. So after a conflict on a retried PUT we re-read the photo, and if it
   * already has the status we asked for, that is success: this makes a lost-answer PUT idempotent.
   * (A caller that still gets `conflict` must re-read too: someone else changed the photo.)
   */
  async setStatus(photo: { id: number; version?: number }, status: string, reason?: string): Promise<SetStatusResult> {
    const reasonParameter = REASON_PARAMETER[status];
    const call: ApiCall = {
      method: 'PUT',
      path: `${this.paths.photo}/${photo.id}`,
      query: reasonParameter && reason ? { [reasonParameter]: reason } : undefined,
      json: photo.version === undefined ? { status } : { status, version: photo.version },
      maxBytes: OBJECT_MAX_BYTES,
    };
    type Answer = { kind: 'ok'; body: Buffer } | { kind: 'conflict'; message: string } | { kind: 'not-found' };
    const { value, retried } = await this.authorized<Answer>(call, (a) => {
      if (a.status >= 200 && a.status < 300) return { kind: 'ok', body: a.body };
      if (a.status === 404) return { kind: 'not-found' };
      const text = a.body.toString('utf8');
      if (a.status === 409 || a.status === 412 || (a.status < 500 && /version|stale|optimistic/i.test(text))) {
        return {
          kind: 'conflict',
          message: redact(`photo ${photo.id} changed since it was read; CloudCard refused to set ${status} (HTTP ${a.status}${snippet(text)})`),
        };
      }
      throw this.unexpected(call, a);
    });

    if (value.kind === 'not-found') return value;
    if (value.kind === 'conflict') {
      if (!retried) return value;
      const current = await this.getPhoto(photo.id);
      if (current?.status === status) {
        this.log.info({ photoId: photo.id, status }, 'a retried status change met a conflict, but the first attempt had committed');
        return { kind: 'ok', photo: current };
      }
      return value;
    }
    // CloudCard answers with the updated photo; if the body is not one (empty, or a proxy mangled it), the
    // change still happened, so read the photo back rather than failing a change that succeeded.
    const updated = tryParseJson(value.body);
    if (hasNumericId(updated)) return { kind: 'ok', photo: updated as Photo };
    const current = await this.getPhoto(photo.id);
    return current ? { kind: 'ok', photo: current } : { kind: 'not-found' };
  }

  // --- sessions -------------------------------------------------------------------------------------

  private currentSession(): Promise<string> {
    if (this.sessionToken) return Promise.resolve(this.sessionToken);
    return this.sharedLogin();
  }

  /** Starts a login unless one is already under way, in which case the caller waits for that one. */
  private sharedLogin(): Promise<string> {
    this.pendingLogin ??= this.createSession().finally(() => {
      this.pendingLogin = undefined;
    });
    return this.pendingLogin;
  }

  /**
   * Called after `stale` got a 401. Calls that failed together share one re-login: whoever comes first
   * starts it, the rest join it, and anyone arriving after it finished just picks up the new token.
   */
  private renewSession(stale: string): Promise<string> {
    if (this.sessionToken && this.sessionToken !== stale) return Promise.resolve(this.sessionToken);
    if (!this.pendingLogin) {
      this.stats.relogins++;
      this.sessionToken = undefined;
      this.log.info('CloudCard session expired or was revoked; logging in again');
    }
    return this.sharedLogin();
  }

  private async createSession(): Promise<string> {
    const call: ApiCall = {
      method: 'POST',
      path: this.paths.session,
      json: { persistentAccessToken: this.accessToken },
      maxBytes: OBJECT_MAX_BYTES,
    };
    const token = await this.exchange(call, null, (a) => {
      if (a.status === 400 || a.status === 401 || a.status === 403) {
        throw new CloudCardError(`CloudCard refused the persistent access token (${a.status}) — check CLOUDCARD_ACCESS_TOKEN`, a.status);
      }
      if (a.status < 200 || a.status >= 300) throw this.unexpected(call, a);
      const data = parseJsonBody(a.body);
      const value = isObject(data) ? data.tokenValue : undefined;
      if (typeof value !== 'string' || value === '') {
        throw new RetryableError(`CloudCard's login answer has no tokenValue (${describeJsonType(data)})`);
      }
      return value;
    });
    if (token === UNAUTHORIZED) throw new Error('unreachable: login is not an authenticated call');
    registerSecret(token);
    this.sessionToken = token;
    this.log.debug('logged in to CloudCard');
    return token;
  }

  // --- requests -------------------------------------------------------------------------------------

  /**
   * An API call with the session token: on 401, one re-login (shared) and one more try. `retried` says
   * whether any attempt was repeated, i.e. whether an earlier one may have reached the server.
   */
  private async authorized<T>(call: ApiCall, interpret: (a: ApiAnswer) => T): Promise<{ value: T; retried: boolean }> {
    let retried = false;
    let token = await this.currentSession();
    for (let pass = 1; ; pass++) {
      const outcome = await this.exchange(call, token, interpret, this.policy, () => {
        retried = true;
      });
      if (outcome !== UNAUTHORIZED) return { value: outcome, retried };
      if (pass === 2) {
        throw new CloudCardError(`${call.method} ${call.path}: CloudCard refused a freshly issued session token (401)`, 401);
      }
      token = await this.renewSession(token);
    }
  }

  /**
   * One API request with retries. `token` null means an unauthenticated call (login), whose 401 goes to
   * `interpret`; otherwise a 401 returns UNAUTHORIZED. 429 and 5xx are retried here; `interpret` sees
   * every other answer and may throw RetryableError for a body that arrived damaged.
   */
  private async exchange<T>(
    call: ApiCall,
    token: string | null,
    interpret: (a: ApiAnswer) => T,
    policy: RetryPolicy = this.policy,
    onRetry?: () => void,
  ): Promise<T | typeof UNAUTHORIZED> {
    const url = this.baseUrl + call.path + queryString(call.query);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent };
    if (token !== null) headers['x-auth-token'] = token;
    if (call.json !== undefined) headers['content-type'] = 'application/json';
    const body = call.json === undefined ? undefined : JSON.stringify(call.json);

    const attempt = async (): Promise<T | typeof UNAUTHORIZED> => {
      this.stats.requests++;
      // The signal bounds the whole exchange, body included: undici errors the body stream on abort.
      const res = await fetch(url, { method: call.method, headers, body, signal: AbortSignal.timeout(this.timeoutMs) });
      if (res.status === 401 && token !== null) {
        await discardBody(res);
        return UNAUTHORIZED;
      }
      if (res.status === 429 || res.status >= 500) {
        await discardBody(res);
        throw new RetryableError(`HTTP ${res.status}`, res.status, parseRetryAfter(res.headers.get('retry-after')));
      }
      const ok = res.status >= 200 && res.status < 300;
      const answerBody = ok ? await readBodyBounded(res, call.maxBytes) : Buffer.from(await readErrorText(res));
      return interpret({ status: res.status, body: answerBody });
    };

    try {
      return await withRetries(policy, attempt, (notice) => {
        onRetry?.();
        this.noteRetry(call.method, call.path, notice);
      });
    } catch (err) {
      if (err instanceof CloudCardError) throw err;
      if (err instanceof RetriesExhaustedError) {
        const status = err.lastError instanceof RetryableError ? err.lastError.status : undefined;
        throw new CloudCardError(
          redact(`${call.method} ${call.path} failed after ${err.attempts} attempts; last: ${describeFailure(err.lastError)}`),
          status,
          { cause: err.lastError },
        );
      }
      if (err instanceof BodyTooLargeError) {
        throw new CloudCardError(redact(`${call.method} ${call.path}: CloudCard's answer is too large: ${err.message}`));
      }
      throw err;
    }
  }

  /** One attempt at a bytes download; throws RetryableError for anything a later attempt could fix. */
  private async downloadOnce(photoId: number, url: string, where: string, opts: DownloadOptions): Promise<DownloadedImage> {
    this.stats.requests++;
    const res = await fetch(url, {
      // No X-Auth-Token here: the session token must not travel to a third-party host. identity encoding
      // keeps Content-Length comparable with what we receive (images do not compress anyway).
      headers: { accept: 'image/jpeg, image/png;q=0.9, */*;q=0.1', 'accept-encoding': 'identity', 'user-agent': this.userAgent },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (res.status === 403 || res.status === 404 || res.status === 410) {
      await discardBody(res);
      throw new PhotoError(
        `photo ${photoId}: image bytes are not at ${where} (HTTP ${res.status}); the photo may have been replaced, it is left for a later run`,
        'bytes-missing',
        true,
      );
    }
    if (res.status === 429 || res.status >= 500) {
      await discardBody(res);
      throw new RetryableError(`HTTP ${res.status}`, res.status, parseRetryAfter(res.headers.get('retry-after')));
    }
    if (res.status < 200 || res.status >= 300) {
      await discardBody(res);
      throw new PhotoError(`photo ${photoId}: image download from ${where} refused (HTTP ${res.status})`, 'download-failed', true);
    }

    const hash = createHash('sha256');
    const expected = declaredLength(res);
    let bytes: Buffer;
    try {
      bytes = await readBodyBounded(res, opts.maxBytes, (chunk) => hash.update(chunk));
    } catch (err) {
      if (!isTransientNetworkError(err)) throw err;
      throw new TruncatedBodyError(`connection lost while reading the image${expected === undefined ? '' : ` of ${expected} bytes`}: ${describeFailure(err)}`);
    }
    if (expected !== undefined && bytes.length !== expected) {
      throw new TruncatedBodyError(`received ${bytes.length} bytes, Content-Length said ${expected}`);
    }
    const { contentType } = checkImage(bytes, { photoId, allowedTypes: opts.allowedTypes });
    this.stats.bytesDownloaded += bytes.length;
    return { bytes, contentType, sha256: hash.digest('hex'), url };
  }

  private noteRetry(method: string, path: string, notice: RetryNotice): void {
    this.stats.retries++;
    this.log.warn(
      { method, path, retry: notice.retry, delayMs: notice.delayMs, reason: redact(describeFailure(notice.error)) },
      'CloudCard request failed; retrying',
    );
  }

  /** An answer none of our rules expected (e.g. 400 or 403 on a list): not retried, reported plainly. */
  private unexpected(call: ApiCall, a: ApiAnswer): CloudCardError {
    return new CloudCardError(redact(`${call.method} ${call.path}: CloudCard answered HTTP ${a.status}${snippet(a.body.toString('utf8'))}`), a.status);
  }
}

// --- small helpers -----------------------------------------------------------------------------------

function queryString(query: ApiCall['query']): string {
  if (!query) return '';
  const parts = Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** A JSON body that does not parse was most likely cut by a proxy: worth another try. */
function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new RetryableError(`CloudCard answered with malformed JSON (${body.length} bytes: ${(err as Error).message})`);
  }
}

function tryParseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasNumericId(value: unknown): boolean {
  return isObject(value) && typeof value.id === 'number' && Number.isSafeInteger(value.id);
}

function describeJsonType(value: unknown): string {
  if (value === null) return 'got null';
  if (Array.isArray(value)) return 'got an array';
  return `got ${typeof value}`;
}

/** The start of a server's error text, for a message: enough to recognise it, not a whole HTML page. */
function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return '';
  return `: ${flat.length > 200 ? `${flat.slice(0, 200)}…` : flat}`;
}
