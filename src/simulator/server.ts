/**
 * The simulator's HTTP side (node:http only): routing, authentication, paging, status updates, image bytes,
 * latency and injected faults. Handlers return a Reply instead of writing it, so a fault can still decide
 * how (or whether) the reply reaches the client.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Faults, type FaultKind, type FaultRule } from './faults.js';
import { photoJson, photoListJson, personJson } from './json.js';
import { Sessions } from './sessions.js';
import { SimStatusQueue } from './sqs.js';
import { isPhotoStatus, PhotoStore } from './store.js';
import type { RequestLogEntry, Simulator, SimulatorOptions } from './types.js';

export const DEFAULT_ACCESS_TOKEN = 'sim-persistent-access-token';
const MAX_PAGE = 1000;
const DEFAULT_PAGE = 25;
const MAX_REQUEST_BODY = 1024 * 1024;
const DEFAULT_SLOW_MS = 30_000;

interface Reply {
  status: number;
  headers: Record<string, string | number>;
  body: Buffer;
}

const FAULT_STATUS: Partial<Record<FaultKind, number>> = {
  status500: 500,
  status502: 502,
  status503: 503,
  status429: 429,
  status401: 401,
  status404: 404,
  status409: 409,
};

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const host = opts.host ?? '127.0.0.1';
  const accessToken = opts.accessToken ?? DEFAULT_ACCESS_TOKEN;
  const latencyMs = opts.latencyMs ?? 0;
  const seed = opts.seed ?? 1;
  const store = new PhotoStore({
    photoCount: opts.photoCount ?? 40,
    imageBytes: opts.imageBytes ?? 40_000,
    pngEvery: opts.pngEvery ?? 5,
    seed,
    unmatchedEvery: opts.unmatchedEvery ?? 0,
    ...(opts.people ? { people: opts.people } : {}),
  });
  const sessions = new Sessions(opts.tokenTtlMs ?? 12 * 60 * 60 * 1000);
  const faults = new Faults(seed);
  const requestLog: RequestLogEntry[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let bytesBaseUrl = '';

  /** A delay that close() can cancel; a cancelled delay never resolves, so its request is simply dropped. */
  const sleep = (ms: number) =>
    ms <= 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            resolve();
          }, ms);
          timers.add(timer);
        });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const method = req.method ?? 'GET';
    const entry: RequestLogEntry = {
      method,
      path: url.pathname + url.search,
      status: 0,
      authHeader: req.headers['x-auth-token'] !== undefined,
    };
    requestLog.push(entry);
    const body = await readBody(req);
    const fault = faults.take({ method, path: url.pathname, photoId: photoIdOf(url.pathname) });
    if (fault) entry.fault = fault.kind;
    await sleep(latencyMs);
    if (fault?.kind === 'slow') {
      await sleep(fault.delayMs ?? DEFAULT_SLOW_MS);
      // A client that gave up sees no effect; lostResponse is the fault for "done but never answered".
      if (req.socket.destroyed) return;
    }
    const faultStatus = fault ? FAULT_STATUS[fault.kind] : undefined;
    let reply: Reply;
    if (faultStatus !== undefined) reply = faultReply(faultStatus, fault!);
    else if (body === 'tooLarge') reply = errorReply(413, 'Payload Too Large', 'request body too large');
    else {
      try {
        reply = route(method, url, req, body);
      } catch (err) {
        reply = errorReply(500, 'Internal Server Error', `simulator bug: ${(err as Error).message}`);
      }
    }
    if (req.socket.destroyed) return;
    send(req.socket, res, method, reply, fault, entry);
  }

  function route(method: string, url: URL, req: IncomingMessage, body: Buffer): Reply {
    const path = url.pathname;
    if (path.startsWith('/storage/')) return method === 'GET' || method === 'HEAD' ? bytesReply(path.slice('/storage/'.length)) : notFound();
    if (!path.startsWith('/api/')) return notFound();

    if (method === 'POST' && (path === '/api/authentication-token' || path === '/api/authenticationTokens')) return authenticate(body);
    const sessionToken = headerValue(req, 'x-auth-token');
    if (method === 'POST' && (path === '/api/person/me/logout' || path === '/api/people/me/logout')) return logout(body, sessionToken);
    if (!sessionToken) return errorReply(401, 'Unauthorized', 'X-Auth-Token header missing');
    if (!sessions.isValid(sessionToken)) return errorReply(401, 'Unauthorized', 'session token expired or revoked');

    const [resource, idPart, ...rest] = path.slice('/api/'.length).split('/');
    if (rest.length > 0) return notFound();
    if (resource === 'photo' || resource === 'photos') {
      if (idPart === undefined) return method === 'GET' ? listPhotos(url) : notFound();
      const photo = /^\d+$/.test(idPart) ? store.get(Number(idPart)) : undefined;
      if (!photo) return errorReply(404, 'Not Found', `no photo ${idPart}`);
      if (method === 'GET') return jsonReply(200, photoJson(photo, bytesBaseUrl, true));
      if (method === 'PUT') return updatePhoto(photo.id, url, body);
      return notFound();
    }
    if ((resource === 'person' || resource === 'people') && idPart !== undefined && method === 'GET') {
      const findBy = url.searchParams.get('findBy') ?? 'identifier';
      if (findBy !== 'identifier' && findBy !== 'email') return errorReply(400, 'Bad Request', 'findBy must be identifier or email');
      const person = store.findPerson(decodeURIComponent(idPart), findBy);
      return person ? jsonReply(200, personJson(person, true)) : errorReply(404, 'Not Found', 'no such person');
    }
    return notFound();
  }

  function authenticate(body: Buffer): Reply {
    const parsed = parseJsonObject(body);
    if (!parsed) return errorReply(400, 'Bad Request', 'body must be a JSON object');
    // The message never repeats the token: a client may log it.
    if (parsed.persistentAccessToken !== accessToken) return errorReply(401, 'Unauthorized', 'persistent access token not accepted');
    return jsonReply(200, sessions.issue());
  }

  function logout(body: Buffer, headerToken: string | undefined): Reply {
    const parsed = parseJsonObject(body);
    const token = typeof parsed?.authenticationToken === 'string' ? parsed.authenticationToken : headerToken;
    if (!sessions.logout(token)) return errorReply(401, 'Unauthorized', 'not a valid session token');
    return { status: 204, headers: {}, body: Buffer.alloc(0) };
  }

  function listPhotos(url: URL): Reply {
    const status = url.searchParams.get('status');
    if (status !== null && !isPhotoStatus(status)) return errorReply(400, 'Bad Request', `unknown status ${status}`);
    const offset = intParam(url, 'offset', 0);
    const max = intParam(url, 'max', DEFAULT_PAGE);
    if (offset === undefined || max === undefined) return errorReply(400, 'Bad Request', 'offset and max must be non-negative integers');
    if (max > MAX_PAGE) return errorReply(400, 'Bad Request', `max must be at most ${MAX_PAGE}`);
    const page: string[] = [];
    let skipped = 0;
    for (const photo of store.inOrder()) {
      if (page.length >= max) break;
      if (status !== null && photo.status !== status) continue;
      if (skipped < offset) skipped++;
      else page.push(photoListJson(photo, bytesBaseUrl));
    }
    return { status: 200, headers: { 'Content-Type': 'application/json' }, body: Buffer.from(`[${page.join(',')}]`) };
  }

  function updatePhoto(id: number, url: URL, body: Buffer): Reply {
    const parsed = parseJsonObject(body);
    if (!parsed) return errorReply(400, 'Bad Request', 'body must be a JSON object');
    const status = parsed.status;
    if (typeof status !== 'string' || !isPhotoStatus(status)) return errorReply(400, 'Bad Request', `unknown status ${String(status)}`);
    const photo = store.get(id)!;
    if (parsed.version !== undefined && parsed.version !== null) {
      const version = Number(parsed.version);
      if (!Number.isInteger(version)) return errorReply(400, 'Bad Request', 'version must be an integer');
      if (version !== photo.version) {
        return jsonReply(409, {
          error: 'Conflict',
          message: `photo ${id} was changed since it was read: it is at version ${photo.version}, not ${version}`,
          currentVersion: photo.version,
        });
      }
    }
    const reason = url.searchParams.get('onHoldReason') ?? url.searchParams.get('failedReason') ?? undefined;
    return jsonReply(200, photoJson(store.setStatus(id, status, reason), bytesBaseUrl, true));
  }

  function bytesReply(objectName: string): Reply {
    const image = store.image(objectName);
    if (!image) {
      // What S3-like storage says for a missing key.
      return {
        status: 404,
        headers: { 'Content-Type': 'application/xml' },
        body: Buffer.from('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>'),
      };
    }
    return { status: 200, headers: { 'Content-Type': image.contentType }, body: store.bytesOf(image) };
  }

  function photoIdOf(path: string): number | undefined {
    const api = /^\/api\/photos?\/(\d+)$/.exec(path);
    if (api) return Number(api[1]);
    if (path.startsWith('/storage/')) return store.image(path.slice('/storage/'.length))?.photoId;
    return undefined;
  }

  // The status queue (when configured) shares the server; SQS requests are told apart by their X-Amz-Target.
  let statusQueue: SimStatusQueue | undefined;
  const server = createServer((req, res) => {
    const handler = statusQueue && req.headers['x-amz-target'] !== undefined ? handleSqs(statusQueue, req, res) : handle(req, res);
    handler.catch(() => req.socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  bytesBaseUrl = `${origin}/storage`;
  if (opts.statusQueue) {
    const queue = new SimStatusQueue(origin, opts.statusQueue, (id) => {
      const photo = store.get(id);
      return photo && photoJson(photo, bytesBaseUrl, true);
    });
    if (opts.statusQueue.enqueueExisting !== false) for (const photo of store.inOrder()) queue.photoChanged(photo);
    store.onStatusChange((photo) => queue.photoChanged(photo));
    statusQueue = queue;
  }

  return {
    baseUrl: `${origin}/api`,
    bytesBaseUrl,
    accessToken,
    photos: () => store.all(),
    photo: (id) => store.get(id),
    addPhoto: (p) => {
      const photo = store.addPhoto(p);
      statusQueue?.photoChanged(photo);
      return photo;
    },
    setStatus: (id, status, reason) => store.setStatus(id, status, reason),
    replaceImage: (id, bytes) => store.replaceImage(id, bytes),
    corruptPhoto: (id, kind, o) => store.corruptPhoto(id, kind, o),
    revokeSessions: () => sessions.revokeAll(),
    sessions: () => sessions.counts(),
    requests: () => requestLog.map((e) => ({ ...e })),
    faults,
    onStatusChange: (listener) => store.onStatusChange(listener),
    queue: statusQueue,
    close: async () => {
      statusQueue?.close();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function handleSqs(queue: SimStatusQueue, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req);
  const reply = body === 'tooLarge' ? undefined : await queue.handle(req, body);
  // No reply: a stalled request (see SimQueue.stallDeletes) stays open until the client or close() ends it.
  if (!reply || req.socket.destroyed) return;
  res.writeHead(reply.status, { ...reply.headers, 'Content-Length': reply.body.length });
  res.end(reply.body);
}

/** Writes the reply, or mangles it as the fault says. */
function send(socket: Socket, res: ServerResponse, method: string, reply: Reply, fault: FaultRule | undefined, entry: RequestLogEntry): void {
  const { body } = reply;
  switch (fault?.kind) {
    case 'lostResponse':
      socket.destroy();
      return;
    case 'reset':
      entry.status = reply.status;
      socket.write(Buffer.concat([rawHead(reply, body.length), body.subarray(0, Math.floor(body.length / 2))]), () => socket.resetAndDestroy());
      return;
    case 'shortBody':
      entry.status = reply.status;
      // The full length is announced, half the body sent, then a clean close (FIN, unlike reset's RST).
      socket.end(Buffer.concat([rawHead(reply, Math.max(1, body.length)), body.subarray(0, Math.floor(body.length / 2))]));
      return;
    case 'malformedJson': {
      const cut = body.length >= 2 ? body.subarray(0, Math.floor(body.length / 2)) : Buffer.from('[{"id":');
      reply = { status: 200, headers: { 'Content-Type': 'application/json' }, body: cut };
      break;
    }
    default:
      break;
  }
  entry.status = reply.status;
  res.writeHead(reply.status, { ...reply.headers, 'Content-Length': reply.body.length });
  res.end(method === 'HEAD' ? undefined : reply.body);
}

/** A status line and headers written straight to the socket, for replies node:http would not let us break. */
function rawHead(reply: Reply, contentLength: number): Buffer {
  const headers = { ...reply.headers, 'Content-Length': contentLength, Connection: 'close' };
  const lines = [`HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? ''}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function jsonReply(status: number, value: unknown): Reply {
  return { status, headers: { 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify(value)) };
}

function errorReply(status: number, error: string, message: string): Reply {
  return jsonReply(status, { error, message });
}

function notFound(): Reply {
  return errorReply(404, 'Not Found', 'no such resource');
}

function faultReply(status: number, fault: FaultRule): Reply {
  const reply = errorReply(status, STATUS_CODES[status] ?? 'Error', `injected fault ${fault.kind}`);
  if (status === 429 || fault.retryAfterSeconds !== undefined) reply.headers['Retry-After'] = fault.retryAfterSeconds ?? 1;
  return reply;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function intParam(url: URL, name: string, fallback: number): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  return /^\d+$/.test(raw) ? Number(raw) : undefined;
}

function parseJsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The whole request body; 'tooLarge' past MAX_REQUEST_BODY (the rest is drained so the reply can be sent). */
function readBody(req: IncomingMessage): Promise<Buffer | 'tooLarge'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_REQUEST_BODY) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_REQUEST_BODY ? 'tooLarge' : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
