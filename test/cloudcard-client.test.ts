/**
 * The CloudCard client against real HTTP servers on loopback: the project's simulator for the API and
 * storage, and a few small scripted servers for answers the simulator never gives (400/403, odd list
 * elements, a chunked body without Content-Length).
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CloudCardClient, type CloudCardClientOptions } from '../src/cloudcard/client.js';
import { backoffDelayMs, parseRetryAfter } from '../src/cloudcard/http.js';
import { CloudCardError, EXIT, PhotoError } from '../src/errors.js';
import { startSimulator, type Simulator } from '../src/simulator/index.js';

// ---- log capture and secret checks --------------------------------------------------------------------

/**
 * Log lines the clients wrote, captured raw: a plain pino logger with no redaction, so a test proves the
 * client never puts a token in a log line, rather than that the redactor caught it.
 */
let logLines: string[] = [];
/** Every secret seen during a test; afterEach checks none leaked into a log line. */
let secrets = new Set<string>();

function capturingLogger() {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(String(chunk));
      done();
    },
  });
  return pino({ level: 'debug' }, sink);
}

/** The session token the client currently holds (a private field; read only to check it never leaks). */
function sessionTokenOf(client: CloudCardClient): string | undefined {
  return (client as unknown as { sessionToken?: string }).sessionToken;
}

function remember(client: CloudCardClient): void {
  const token = sessionTokenOf(client);
  if (token) secrets.add(token);
}

function expectNoSecrets(text: string): void {
  for (const s of secrets) expect(text).not.toContain(s);
}

beforeEach(() => {
  logLines = [];
  secrets = new Set();
});

afterEach(() => {
  expectNoSecrets(logLines.join('\n'));
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expectNoSecrets(String((err as Error).message));
    expectNoSecrets(String((err as Error).stack));
    return err as Error;
  }
  throw new Error('expected the call to fail');
}

// ---- the simulator -------------------------------------------------------------------------------------

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ photoCount: 30, imageBytes: 20_000, accessToken: 'pat-for-client-tests-0123456789' });
});

afterAll(async () => {
  await sim.close();
});

afterEach(() => {
  sim.faults.clear();
});

function clientFor(target: { baseUrl: string; accessToken: string }, opts: Partial<CloudCardClientOptions> = {}): CloudCardClient {
  secrets.add(target.accessToken);
  return new CloudCardClient({
    baseUrl: target.baseUrl,
    accessToken: target.accessToken,
    retryBaseMs: 5,
    timeoutMs: 5_000,
    logger: capturingLogger(),
    ...opts,
  });
}

const LIST_PATH = /^\/api\/photo$/;

function requestsSince(mark: number) {
  return sim.requests().slice(mark);
}

describe('sessions', () => {
  it('logs in with the access token and lists photos with the session token', async () => {
    const client = clientFor(sim);
    const mark = sim.requests().length;
    await client.login();
    remember(client);
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 1000);
    const ready = sim.photos().filter((p) => p.status === 'READY_FOR_DOWNLOAD');
    expect(photos.map((p) => p.id)).toEqual(ready.map((p) => p.id));
    expect(photos[0]).toMatchObject({ id: ready[0]!.id, version: ready[0]!.version, status: 'READY_FOR_DOWNLOAD' });
    const [login, list] = requestsSince(mark);
    expect(login).toMatchObject({ method: 'POST', path: '/api/authentication-token', status: 200, authHeader: false });
    expect(list).toMatchObject({ method: 'GET', path: '/api/photo?status=READY_FOR_DOWNLOAD&offset=0&max=1000', status: 200, authHeader: true });
    expect(client.stats).toMatchObject({ requests: 2, retries: 0, relogins: 0 });
  });

  it('logs in lazily on the first call, once, even for concurrent first calls', async () => {
    const client = clientFor(sim, { baseUrl: `${sim.baseUrl}/` }); // trailing slash tolerated
    const before = sim.sessions().issued;
    const ids = sim.photos().slice(0, 5).map((p) => p.id);
    const photos = await Promise.all(ids.map((id) => client.getPhoto(id)));
    remember(client);
    expect(photos.map((p) => p?.id)).toEqual(ids);
    expect(sim.sessions().issued).toBe(before + 1);
  });

  it('refuses a wrong access token with a clear error that does not contain it (exit code 3)', async () => {
    const wrong = { baseUrl: sim.baseUrl, accessToken: 'wrong-pat-abcdef-987654' };
    const client = clientFor(wrong);
    const mark = sim.requests().length;
    const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 10));
    expect(err).toBeInstanceOf(CloudCardError);
    expect((err as CloudCardError).exitCode).toBe(EXIT.CLOUDCARD_UNREACHABLE);
    expect(err.message).toBe('CloudCard refused the persistent access token (401) — check CLOUDCARD_ACCESS_TOKEN');
    expect(err.message).not.toContain(wrong.accessToken);
    expect(requestsSince(mark)).toHaveLength(1); // a refused token is not retried
  });

  it('after revoked sessions, logs in again once and repeats the call', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    sim.revokeSessions();
    const issued = sim.sessions().issued;
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 5);
    remember(client);
    expect(photos).toHaveLength(5);
    expect(client.stats.relogins).toBe(1);
    expect(sim.sessions().issued).toBe(issued + 1);
  });

  it('concurrent calls that all hit 401 share one re-login', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    sim.revokeSessions();
    const issued = sim.sessions().issued;
    const ids = sim.photos().slice(0, 12).map((p) => p.id);
    const photos = await Promise.all(ids.map((id) => client.getPhoto(id)));
    remember(client);
    expect(photos.map((p) => p?.id)).toEqual(ids);
    expect(sim.sessions().issued).toBe(issued + 1);
    expect(client.stats.relogins).toBe(1);
  });

  it('gives up with CloudCardError when a fresh session is refused too', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    sim.faults.add({ kind: 'status401', match: { path: LIST_PATH }, times: 2 });
    const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 5));
    remember(client);
    expect(err).toBeInstanceOf(CloudCardError);
    expect((err as CloudCardError).status).toBe(401);
    expect(err.message).toContain('GET /photo');
    expect(client.stats.relogins).toBe(1);
  });

  it('logout ends the session on the server; the next call logs in again', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    const before = sim.sessions();
    await client.logout();
    const after = sim.sessions();
    expect(after.loggedOut).toBe(before.loggedOut + 1);
    expect(after.active).toBe(before.active - 1);
    const logoutRequest = sim.requests().at(-1)!;
    expect(logoutRequest).toMatchObject({ method: 'POST', path: '/api/person/me/logout', status: 204 });
    expect(await client.getPhoto(sim.photos()[0]!.id)).not.toBeNull();
    remember(client);
    expect(sim.sessions().issued).toBe(after.issued + 1);
  });

  it('logout never throws, even when CloudCard keeps failing; it logs a warning', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    sim.faults.add({ kind: 'status503', match: { path: '/api/person/me/logout' }, times: Infinity });
    await expect(client.logout()).resolves.toBeUndefined();
    expect(logLines.some((l) => l.includes('CloudCard logout failed'))).toBe(true);
  });

  it('uses the legacy paths when asked', async () => {
    const client = clientFor(sim, { legacyPaths: true });
    const mark = sim.requests().length;
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 3);
    remember(client);
    expect(photos).toHaveLength(3);
    await client.logout();
    const paths = requestsSince(mark).map((r) => `${r.method} ${r.path.split('?')[0]}`);
    expect(paths).toEqual(['POST /api/authenticationTokens', 'GET /api/photos', 'POST /api/people/me/logout']);
  });
});

describe('listing and reading', () => {
  it('pages through 2,500 photos in pages of 1000 with a short last page', async () => {
    const big = await startSimulator({ photoCount: 2500, imageBytes: 2_000, accessToken: 'pat-for-paging-test-abcdef' });
    try {
      const client = clientFor(big);
      const seen: number[] = [];
      const sizes: number[] = [];
      for (let offset = 0; ; offset += 1000) {
        const page = await client.listPhotos('READY_FOR_DOWNLOAD', offset, 1000);
        remember(client);
        sizes.push(page.length);
        seen.push(...page.map((p) => p.id));
        if (page.length < 1000) break;
      }
      expect(sizes).toEqual([1000, 1000, 500]);
      expect(new Set(seen).size).toBe(2500);
      expect(seen).toEqual(big.photos().map((p) => p.id));
    } finally {
      await big.close();
    }
  });

  it('getPhoto returns null on 404; getPerson finds by identifier and by email, null when unknown', async () => {
    const client = clientFor(sim);
    expect(await client.getPhoto(987_654)).toBeNull();
    const person = sim.photos().map((p) => p.person).find((p) => p.identifier !== null)!;
    const byId = await client.getPerson(person.identifier!);
    expect(byId).toMatchObject({ id: person.id, email: person.email });
    const byEmail = await client.getPerson(person.email, 'email');
    expect(byEmail?.id).toBe(person.id);
    expect(await client.getPerson('no such person / with slash')).toBeNull();
    remember(client);
  });

  it('retries a list whose JSON was cut, then succeeds', async () => {
    const client = clientFor(sim);
    sim.faults.add({ kind: 'malformedJson', match: { path: LIST_PATH }, times: 2 });
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 4);
    remember(client);
    expect(photos).toHaveLength(4);
    expect(client.stats.retries).toBe(2);
  });

  it('fails clearly when the list JSON stays malformed', async () => {
    const client = clientFor(sim, { maxRetries: 2 });
    sim.faults.add({ kind: 'malformedJson', match: { path: LIST_PATH }, times: Infinity });
    const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 4));
    remember(client);
    expect(err).toBeInstanceOf(CloudCardError);
    expect(err.message).toMatch(/^GET \/photo failed after 3 attempts; last: CloudCard answered with malformed JSON/);
  });
});

describe('retries', () => {
  it('honours Retry-After on 429', async () => {
    const client = clientFor(sim, { retryBaseMs: 1 });
    await client.login();
    remember(client);
    sim.faults.add({ kind: 'status429', match: { path: LIST_PATH }, retryAfterSeconds: 1 });
    const started = performance.now();
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 2);
    const elapsed = performance.now() - started;
    expect(photos).toHaveLength(2);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(client.stats.retries).toBe(1);
  });

  it('retries a burst of 500, 502 and 503, then succeeds', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    const mark = sim.requests().length;
    for (const kind of ['status500', 'status502', 'status503'] as const) sim.faults.add({ kind, match: { path: LIST_PATH } });
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 3);
    expect(photos).toHaveLength(3);
    expect(requestsSince(mark).map((r) => r.status)).toEqual([500, 502, 503, 200]);
    expect(client.stats.retries).toBe(3);
  });

  it('throws after the retries run out, naming method, path and last status but not the query', async () => {
    const client = clientFor(sim, { maxRetries: 3 });
    await client.login();
    remember(client);
    const mark = sim.requests().length;
    sim.faults.add({ kind: 'status503', match: { path: LIST_PATH }, times: Infinity });
    const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 3));
    expect(err).toBeInstanceOf(CloudCardError);
    expect(err.message).toBe('GET /photo failed after 4 attempts; last: HTTP 503');
    expect((err as CloudCardError).status).toBe(503);
    expect(requestsSince(mark)).toHaveLength(4);
  });

  it('retries a response that is too slow, within the timeout', async () => {
    const client = clientFor(sim, { timeoutMs: 300 });
    await client.login();
    remember(client);
    sim.faults.add({ kind: 'slow', match: { path: LIST_PATH }, delayMs: 3_000 });
    const started = performance.now();
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 2);
    expect(photos).toHaveLength(2);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(client.stats.retries).toBe(1);
    expect(logLines.some((l) => l.includes('timed out'))).toBe(true);
  });

  it('retries a connection reset in the middle of an API answer', async () => {
    const client = clientFor(sim);
    sim.faults.add({ kind: 'reset', match: { path: LIST_PATH } });
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 20);
    remember(client);
    expect(photos).toHaveLength(20);
    expect(client.stats.retries).toBe(1);
  });

  it('does not retry a 404 on a list', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    const mark = sim.requests().length;
    sim.faults.add({ kind: 'status404', match: { path: LIST_PATH } });
    const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 2));
    expect(err).toBeInstanceOf(CloudCardError);
    expect((err as CloudCardError).status).toBe(404);
    expect(requestsSince(mark)).toHaveLength(1);
  });
});

// ---- a scripted API, for answers the simulator does not give -----------------------------------------

interface Scripted {
  baseUrl: string;
  accessToken: string;
  hits: string[];
  close(): Promise<void>;
}

async function startScripted(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Scripted> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    if (req.method === 'POST' && req.url === '/api/authentication-token') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ tokenValue: 'scripted-session-token-xyz', expirationDate: '2099-01-01T00:00:00Z' }));
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/api`,
    accessToken: 'scripted-pat-1234567',
    hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('answers from a scripted server', () => {
  it.each([400, 403])('does not retry %i, and says what CloudCard answered', async (status) => {
    const api = await startScripted((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `scripted ${status}` }));
    });
    try {
      const client = clientFor(api);
      secrets.add('scripted-session-token-xyz');
      const err = await rejection(client.listPhotos('READY_FOR_DOWNLOAD', 0, 5));
      expect(err).toBeInstanceOf(CloudCardError);
      expect(err.message).toContain(`GET /photo: CloudCard answered HTTP ${status}`);
      expect(err.message).toContain(`scripted ${status}`);
      expect(api.hits.filter((h) => h.startsWith('GET /api/photo'))).toHaveLength(1);
    } finally {
      await api.close();
    }
  });

  it('drops list elements without a numeric id with a warning, keeps the rest, ignores unknown fields', async () => {
    const api = await startScripted((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ id: 1, status: 'READY_FOR_DOWNLOAD', brandNew: { x: 1 } }, { status: 'READY_FOR_DOWNLOAD' }, { id: '2' }, null, { id: 3, status: 'READY_FOR_DOWNLOAD' }]));
    });
    try {
      const client = clientFor(api);
      secrets.add('scripted-session-token-xyz');
      const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 10);
      expect(photos.map((p) => p.id)).toEqual([1, 3]);
      expect(logLines.filter((l) => l.includes('without a numeric id'))).toHaveLength(3);
    } finally {
      await api.close();
    }
  });

  it('retries a list answer that is JSON but not an array', async () => {
    let calls = 0;
    const api = await startScripted((_req, res) => {
      calls++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(calls === 1 ? '{"error":"proxy says hi"}' : '[{"id":7,"status":"READY_FOR_DOWNLOAD"}]');
    });
    try {
      const client = clientFor(api);
      secrets.add('scripted-session-token-xyz');
      expect((await client.listPhotos('READY_FOR_DOWNLOAD', 0, 10)).map((p) => p.id)).toEqual([7]);
      expect(client.stats.retries).toBe(1);
    } finally {
      await api.close();
    }
  });

  it('stops reading an oversized image without Content-Length as soon as it passes the limit', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    chunk[0] = 0xff;
    chunk[1] = 0xd8;
    chunk[2] = 0xff;
    let serverSawAbort = false;
    let chunksWritten = 0;
    const api = await startScripted((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg' }); // chunked: no Content-Length to refuse up front
      res.on('close', () => {
        if (!res.writableFinished) serverSawAbort = true;
      });
      const pump = () => {
        while (chunksWritten < 160 && !res.destroyed) {
          chunksWritten++;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      pump();
    });
    try {
      const client = clientFor(api);
      const photo = { id: 77, status: 'READY_FOR_DOWNLOAD', externalURL: `${api.baseUrl.replace('/api', '')}/storage/big.jpg` };
      const err = await rejection(client.downloadBytes(photo, { maxBytes: 200_000 }));
      expect(err).toBeInstanceOf(PhotoError);
      expect(err).toMatchObject({ code: 'too-large', retryable: false });
      expect(err.message).toMatch(/^photo 77: image is larger than the 200000-byte limit \(stopped after \d+ bytes\)$/);
      await new Promise((r) => setTimeout(r, 100));
      expect(serverSawAbort).toBe(true);
      expect(chunksWritten).toBeLessThan(160); // 10 MB were on offer; we took a fraction
    } finally {
      await api.close();
    }
  });
});

// ---- image bytes ---------------------------------------------------------------------------------------

describe('downloadBytes', () => {
  function listed(id: number) {
    const client = clientFor(sim);
    return client.getPhoto(id).then((p) => {
      remember(client);
      return { client, photo: p! };
    });
  }

  it('downloads, checks and hashes JPEG and PNG bytes without sending the session token', async () => {
    const client = clientFor(sim);
    const photos = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 10);
    remember(client);
    const mark = sim.requests().length;
    for (const photo of photos) {
      const image = await client.downloadBytes(photo, { maxBytes: 1_000_000 });
      const truth = sim.photo(photo.id)!;
      expect(image.bytes.equals(truth.bytes)).toBe(true);
      expect(image.sha256).toBe(createHash('sha256').update(truth.bytes).digest('hex'));
      expect(image.contentType).toBe(truth.contentType);
      expect(image.url).toBe(photo.links?.bytes ?? photo.externalURL);
    }
    expect(new Set(photos.map((p) => p.links?.bytes ? 'links' : 'external'))).toEqual(new Set(['links', 'external']));
    const bytesRequests = requestsSince(mark);
    expect(bytesRequests).toHaveLength(photos.length);
    expect(bytesRequests.every((r) => r.path.startsWith('/storage/') && !r.authHeader)).toBe(true);
    expect(client.stats.bytesDownloaded).toBe(photos.reduce((n, p) => n + sim.photo(p.id)!.bytes.length, 0));
  });

  it('retries a reset in the middle of the bytes and a short body, then succeeds', async () => {
    const { client, photo } = await listed(sim.photos()[1]!.id);
    sim.faults.add({ kind: 'reset', match: { photoId: photo.id, method: 'GET', path: '/storage/' } });
    sim.faults.add({ kind: 'shortBody', match: { photoId: photo.id, method: 'GET', path: '/storage/' } });
    const image = await client.downloadBytes(photo, { maxBytes: 1_000_000 });
    expect(image.bytes.equals(sim.photo(photo.id)!.bytes)).toBe(true);
    expect(client.stats.retries).toBe(2);
  });

  it('gives up on a body that keeps arriving short with a retryable truncated error', async () => {
    const { client, photo } = await listed(sim.photos()[2]!.id);
    sim.faults.add({ kind: 'shortBody', match: { photoId: photo.id, path: '/storage/' }, times: Infinity });
    const err = await rejection(client.downloadBytes(photo, { maxBytes: 1_000_000 }));
    expect(err).toBeInstanceOf(PhotoError);
    expect(err).toMatchObject({ code: 'truncated', retryable: true });
    expect(err.message).toContain(`photo ${photo.id}`);
  });

  it('reports bytes gone from storage as bytes-missing, without retrying', async () => {
    const { client, photo } = await listed(sim.photos()[3]!.id);
    const mark = sim.requests().length;
    sim.faults.add({ kind: 'status404', match: { photoId: photo.id, path: '/storage/' } });
    const err = await rejection(client.downloadBytes(photo, { maxBytes: 1_000_000 }));
    expect(err).toMatchObject({ code: 'bytes-missing', retryable: true });
    expect(requestsSince(mark)).toHaveLength(1);
  });

  it('refuses a photo with no bytes URL', async () => {
    const client = clientFor(sim);
    const err = await rejection(client.downloadBytes({ id: 5, status: 'READY_FOR_DOWNLOAD', links: {}, externalURL: null }, { maxBytes: 10 }));
    expect(err).toMatchObject({ code: 'no-bytes-url', retryable: false });
  });

  it('refuses a non-image, a truncated JPEG, a disallowed type and an oversized image', async () => {
    const [a, b, c, d] = sim.photos().filter((p) => p.contentType === 'image/jpeg').slice(10, 14);
    sim.corruptPhoto(a!.id, 'notImage');
    sim.corruptPhoto(b!.id, 'truncatedJpeg');
    sim.corruptPhoto(d!.id, 'oversize', { sizeBytes: 3_000_000 });
    const client = clientFor(sim);
    const fetchPhoto = async (id: number) => (await client.getPhoto(id))!;

    const notImage = await rejection(client.downloadBytes(await fetchPhoto(a!.id), { maxBytes: 1_000_000 }));
    expect(notImage).toMatchObject({ code: 'not-an-image', retryable: false });
    const truncated = await rejection(client.downloadBytes(await fetchPhoto(b!.id), { maxBytes: 1_000_000 }));
    expect(truncated).toMatchObject({ code: 'truncated-image' });
    const disallowed = await rejection(client.downloadBytes(await fetchPhoto(c!.id), { maxBytes: 1_000_000, allowedTypes: ['png'] }));
    expect(disallowed).toMatchObject({ code: 'type-not-allowed', retryable: false });

    const before = client.stats.bytesDownloaded;
    const tooLarge = await rejection(client.downloadBytes(await fetchPhoto(d!.id), { maxBytes: 1_000_000 }));
    remember(client);
    expect(tooLarge).toMatchObject({ code: 'too-large', retryable: false });
    expect(tooLarge.message).toBe(`photo ${d!.id}: image is larger than the 1000000-byte limit (Content-Length says ${sim.photo(d!.id)!.bytes.length} bytes)`);
    expect(client.stats.bytesDownloaded).toBe(before);
  });
});

// ---- status changes ------------------------------------------------------------------------------------

describe('setStatus', () => {
  it('marks a photo with its version and returns the updated photo', async () => {
    const client = clientFor(sim);
    const target = sim.photos().find((p) => p.status === 'READY_FOR_DOWNLOAD')!;
    const result = await client.setStatus({ id: target.id, version: target.version }, 'DOWNLOADED');
    remember(client);
    expect(result.kind).toBe('ok');
    const after = sim.photo(target.id)!;
    expect(after.status).toBe('DOWNLOADED');
    expect(result.kind === 'ok' && result.photo).toMatchObject({ id: target.id, status: 'DOWNLOADED', version: after.version });
  });

  it('sends the hold reason URL-encoded as onHoldReason', async () => {
    const client = clientFor(sim);
    const target = sim.photos().find((p) => p.status === 'READY_FOR_DOWNLOAD')!;
    const reason = 'No student with ID 00123 & "Jo" ✓';
    const mark = sim.requests().length;
    expect((await client.setStatus({ id: target.id }, 'ON_HOLD', reason)).kind).toBe('ok');
    remember(client);
    expect(sim.photo(target.id)!.statusHistory.at(-1)).toMatchObject({ status: 'ON_HOLD', reason });
    const put = requestsSince(mark).find((r) => r.method === 'PUT')!;
    expect(put.path).toBe(`/api/photo/${target.id}?onHoldReason=${encodeURIComponent(reason)}`);
  });

  it('returns conflict for a stale version and leaves the photo alone', async () => {
    const client = clientFor(sim);
    const target = sim.photos().find((p) => p.status === 'READY_FOR_DOWNLOAD')!;
    const stale = target.version;
    sim.setStatus(target.id, 'READY_FOR_DOWNLOAD'); // the card office touched it: version bumped
    const result = await client.setStatus({ id: target.id, version: stale }, 'DOWNLOADED');
    remember(client);
    expect(result.kind).toBe('conflict');
    expect(result.kind === 'conflict' && result.message).toContain(`photo ${target.id}`);
    expect(sim.photo(target.id)!.status).toBe('READY_FOR_DOWNLOAD');
  });

  it('returns not-found for an unknown photo', async () => {
    const client = clientFor(sim);
    expect(await client.setStatus({ id: 999_999, version: 1 }, 'DOWNLOADED')).toEqual({ kind: 'not-found' });
    remember(client);
  });

  it.each(['lostResponse', 'reset'] as const)('treats a PUT whose answer was lost (%s) as done, via a re-read', async (kind) => {
    const client = clientFor(sim);
    const target = sim.photos().find((p) => p.status === 'READY_FOR_DOWNLOAD')!;
    const changesBefore = target.statusHistory.length;
    sim.faults.add({ kind, match: { method: 'PUT', photoId: target.id } });
    const result = await client.setStatus({ id: target.id, version: target.version }, 'DOWNLOADED');
    remember(client);
    expect(result.kind).toBe('ok');
    expect(result.kind === 'ok' && result.photo.status).toBe('DOWNLOADED');
    const after = sim.photo(target.id)!;
    expect(after.status).toBe('DOWNLOADED');
    expect(after.statusHistory.length).toBe(changesBefore + 1); // changed once, not twice
    expect(client.stats.retries).toBe(1);
  });

  it('still reports a conflict on a retried PUT when someone else changed the photo', async () => {
    const client = clientFor(sim);
    const target = sim.photos().find((p) => p.status === 'READY_FOR_DOWNLOAD')!;
    const stale = target.version;
    sim.setStatus(target.id, 'ON_HOLD', 'card office');
    sim.faults.add({ kind: 'status503', match: { method: 'PUT', photoId: target.id } });
    const result = await client.setStatus({ id: target.id, version: stale }, 'DOWNLOADED');
    remember(client);
    expect(result.kind).toBe('conflict');
    expect(sim.photo(target.id)!.status).toBe('ON_HOLD');
  });
});

// ---- secrets ------------------------------------------------------------------------------------------

describe('secrets', () => {
  it('a whole session, faults included, logs plenty at debug level and never a token', async () => {
    const client = clientFor(sim);
    await client.login();
    remember(client);
    sim.revokeSessions();
    sim.faults.add({ kind: 'status503', match: { path: LIST_PATH } });
    sim.faults.add({ kind: 'reset', match: { path: '/storage/' } });
    const [photo] = await client.listPhotos('READY_FOR_DOWNLOAD', 0, 1);
    remember(client);
    await client.downloadBytes(photo!, { maxBytes: 1_000_000 });
    sim.faults.add({ kind: 'status401', match: { method: 'PUT' } });
    await client.setStatus({ id: photo!.id, version: photo!.version }, 'DOWNLOADED');
    remember(client);
    await client.logout();
    expect(secrets.size).toBeGreaterThanOrEqual(3); // the PAT and at least two session tokens
    expect(logLines.length).toBeGreaterThanOrEqual(5);
    expect(logLines.join('\n')).toMatch(/retrying/);
    expectNoSecrets(logLines.join('\n'));
  });
});

// ---- pure helpers --------------------------------------------------------------------------------------

describe('retry timing helpers', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('-5', now)).toBeUndefined();
  });

  it('backs off exponentially with full jitter, capped', () => {
    const policy = { maxRetries: 5, baseMs: 100, capMs: 1_000 };
    expect(backoffDelayMs(0, policy, () => 0.999)).toBe(99);
    expect(backoffDelayMs(2, policy, () => 0.5)).toBe(200);
    expect(backoffDelayMs(10, policy, () => 0.999)).toBe(999);
    expect(backoffDelayMs(3, policy, () => 0)).toBe(0);
  });
});
