/**
 * The CloudCard simulator against Node's fetch over loopback: the fixture every other suite relies on, so
 * its behaviour (auth, paging, versions, bytes, latency, faults, bad data) is pinned down here.
 */
import { createHash } from 'node:crypto';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { seedPeople, startSimulator, studentNumberFor, type Simulator, type SimulatorOptions } from '../src/simulator/index.js';

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let running: Simulator[] = [];
afterEach(async () => {
  await Promise.all(running.map((s) => s.close()));
  running = [];
});

async function start(opts: SimulatorOptions = {}): Promise<Simulator> {
  const sim = await startSimulator(opts);
  running.push(sim);
  return sim;
}

async function login(sim: Simulator, path = 'authentication-token'): Promise<string> {
  const res = await fetch(`${sim.baseUrl}/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ persistentAccessToken: sim.accessToken }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { tokenValue: string; expirationDate: string };
  return body.tokenValue;
}

function api(sim: Simulator, token: string | undefined, path: string, init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', 'Content-Type': 'application/json' };
  if (token) headers['X-Auth-Token'] = token;
  return fetch(`${sim.baseUrl}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
}

type ListedPhoto = {
  id: number;
  version: number;
  status: string;
  publicKey: string;
  dateCreated: string;
  externalURL?: string | null;
  links?: { bytes?: string };
  person: { identifier: string | null; customFields: Record<string, string | null> };
  classifications: unknown[];
  someNewField?: unknown;
};

async function list(sim: Simulator, token: string, query: string, path = '/photo'): Promise<ListedPhoto[]> {
  const res = await api(sim, token, `${path}?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ListedPhoto[];
}

function bytesUrl(p: ListedPhoto): string {
  const url = p.links?.bytes ?? p.externalURL;
  if (!url) throw new Error(`photo ${p.id} has no bytes URL`);
  return url;
}

async function fetchBytes(url: string, headers: Record<string, string> = {}): Promise<{ res: Response; bytes: Buffer }> {
  const res = await fetch(url, { headers });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function putStatus(sim: Simulator, token: string, id: number, body: object, query = '', path = '/photo'): Promise<Response> {
  return api(sim, token, `${path}/${id}${query}`, { method: 'PUT', body: JSON.stringify(body) });
}

/** Resolves if the request or its body read fails, as a client sees a broken connection. */
async function expectBrokenResponse(run: () => Promise<Response>): Promise<void> {
  await expect(
    (async () => {
      const res = await run();
      await res.arrayBuffer();
    })(),
  ).rejects.toThrow();
}

describe('authentication', () => {
  it('issues session tokens for the right access token on both paths, and refuses a wrong one without echoing it', async () => {
    const sim = await start();
    const a = await login(sim);
    const b = await login(sim, 'authenticationTokens');
    expect(a).not.toBe(b);
    expect(a.length).toBeGreaterThanOrEqual(20);

    const wrong = await fetch(`${sim.baseUrl}/authentication-token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ persistentAccessToken: 'wrong-token-value-123' }),
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain('wrong-token-value-123');
    expect(sim.sessions()).toEqual({ issued: 2, active: 2, loggedOut: 0 });
  });

  it('answers 401 JSON without a token, with an unknown token, and after expiry', async () => {
    const sim = await start({ tokenTtlMs: 150 });
    const missing = await api(sim, undefined, '/photo');
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: string }).error).toBe('Unauthorized');
    expect((await api(sim, 'not-a-session', '/photo')).status).toBe(401);

    const token = await login(sim);
    expect((await api(sim, token, '/photo')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 250));
    expect((await api(sim, token, '/photo')).status).toBe(401);
    expect(sim.sessions().active).toBe(0);
  });

  it('logs out on both paths (204) and the token stops working; revokeSessions invalidates all', async () => {
    const sim = await start();
    for (const path of ['/person/me/logout', '/people/me/logout']) {
      const token = await login(sim);
      const res = await api(sim, token, path, { method: 'POST', body: JSON.stringify({ authenticationToken: token }) });
      expect(res.status).toBe(204);
      expect((await api(sim, token, '/photo')).status).toBe(401);
    }
    expect(sim.sessions()).toEqual({ issued: 2, active: 0, loggedOut: 2 });

    const t1 = await login(sim);
    const t2 = await login(sim);
    sim.revokeSessions();
    expect((await api(sim, t1, '/photo')).status).toBe(401);
    expect((await api(sim, t2, '/photo/1')).status).toBe(401);
    expect((await login(sim)).length).toBeGreaterThan(0); // a fresh login works again
  });
});

describe('listing photos', () => {
  it('pages 2500 photos fully by offset/max in id order, the last page short, on both paths', async () => {
    const sim = await start({ photoCount: 2500, imageBytes: 2000 });
    const token = await login(sim);
    const seen: number[] = [];
    const sizes: number[] = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await list(sim, token, `status=READY_FOR_DOWNLOAD&offset=${offset}&max=1000`);
      sizes.push(page.length);
      seen.push(...page.map((p) => p.id));
      if (page.length < 1000) break;
    }
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));

    const deprecated = await list(sim, token, 'status=READY_FOR_DOWNLOAD&offset=2490&max=1000', '/photos');
    expect(deprecated.map((p) => p.id)).toEqual(seen.slice(2490));
  });

  it('defaults max to 25, accepts 0, refuses more than 1000 and bad numbers, filters by status', async () => {
    const sim = await start({ photoCount: 60 });
    const token = await login(sim);
    expect(await list(sim, token, 'status=READY_FOR_DOWNLOAD')).toHaveLength(25);
    expect(await list(sim, token, 'status=READY_FOR_DOWNLOAD&max=0')).toHaveLength(0);
    expect(await list(sim, token, 'status=READY_FOR_DOWNLOAD&offset=100&max=10')).toHaveLength(0);
    expect((await api(sim, token, '/photo?status=READY_FOR_DOWNLOAD&max=1001')).status).toBe(400);
    expect((await api(sim, token, '/photo?status=READY_FOR_DOWNLOAD&max=-1')).status).toBe(400);
    expect((await api(sim, token, '/photo?status=NOT_A_STATUS')).status).toBe(400);

    sim.setStatus(3, 'DOWNLOADED');
    sim.setStatus(4, 'ON_HOLD');
    const ready = await list(sim, token, 'status=READY_FOR_DOWNLOAD&max=1000');
    expect(ready).toHaveLength(58);
    expect(ready.map((p) => p.id)).not.toContain(3);
    expect((await list(sim, token, 'status=DOWNLOADED&max=1000')).map((p) => p.id)).toEqual([3]);
  });

  it('returns lightweight objects with both date formats, one-sided bytes URLs and unknown fields', async () => {
    const sim = await start({ photoCount: 30 });
    const token = await login(sim);
    const page = await list(sim, token, 'status=READY_FOR_DOWNLOAD&max=30');
    expect(page.some((p) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(p.dateCreated))).toBe(true);
    expect(page.some((p) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/.test(p.dateCreated))).toBe(true);
    expect(page.some((p) => p.links?.bytes === undefined && typeof p.externalURL === 'string')).toBe(true);
    expect(page.some((p) => p.links?.bytes !== undefined && !p.externalURL)).toBe(true);
    for (const p of page) {
      expect(p.classifications).toEqual([]);
      expect(p.someNewField).toBeDefined();
      expect(bytesUrl(p).startsWith(`${sim.bytesBaseUrl}/${p.publicKey}.`)).toBe(true);
      expect(p.version).toBe(sim.photo(p.id)?.version);
    }
  });
});

describe('one photo, one person', () => {
  it('gets a photo in full on both paths and 404s an unknown one', async () => {
    const sim = await start();
    const token = await login(sim);
    for (const path of ['/photo/5', '/photos/5']) {
      const res = await api(sim, token, path);
      expect(res.status).toBe(200);
      const photo = (await res.json()) as { id: number; person: { additionalPhotos: unknown[] } };
      expect(photo.id).toBe(5);
      expect(photo.person.additionalPhotos).toEqual([]);
    }
    expect((await api(sim, token, '/photo/9999')).status).toBe(404);
    expect((await api(sim, token, '/photo/abc')).status).toBe(404);
    expect((await api(sim, token, '/nothing/here')).status).toBe(404);
  });

  it('finds a person by identifier (exactly as stored) or email', async () => {
    const sim = await start();
    const token = await login(sim);
    const spaced = sim.photos().find((p) => p.person.identifier?.startsWith(' '));
    expect(spaced).toBeDefined();
    const byId = await api(sim, token, `/person/${encodeURIComponent(spaced!.person.identifier!)}?findBy=identifier`);
    expect(byId.status).toBe(200);
    expect(((await byId.json()) as { id: number }).id).toBe(spaced!.person.id);
    const byEmail = await api(sim, token, `/person/${encodeURIComponent(spaced!.person.email)}?findBy=email`);
    expect(((await byEmail.json()) as { email: string }).email).toBe(spaced!.person.email);
    expect((await api(sim, token, '/person/000000000?findBy=identifier')).status).toBe(404);
  });
});

describe('marking photos', () => {
  it('updates with the current version (bumped, history kept), refuses a stale one with 409, and notifies listeners', async () => {
    const sim = await start();
    const token = await login(sim);
    const changes: Array<[number, string, string]> = [];
    sim.onStatusChange((p, previous) => changes.push([p.id, previous, p.status]));
    const before = sim.photo(7)!.version;

    const ok = await putStatus(sim, token, 7, { status: 'DOWNLOADED', version: before });
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { status: string; version: number };
    expect(body).toMatchObject({ status: 'DOWNLOADED', version: before + 1 });
    expect(sim.photo(7)).toMatchObject({ status: 'DOWNLOADED', version: before + 1 });
    expect(sim.photo(7)!.statusHistory.at(-1)).toMatchObject({ status: 'DOWNLOADED', version: before + 1 });

    const stale = await putStatus(sim, token, 7, { status: 'READY_FOR_DOWNLOAD', version: before });
    expect(stale.status).toBe(409);
    expect(((await stale.json()) as { currentVersion: number }).currentVersion).toBe(before + 1);
    expect(sim.photo(7)).toMatchObject({ status: 'DOWNLOADED', version: before + 1 });

    expect(changes).toEqual([[7, 'READY_FOR_DOWNLOAD', 'DOWNLOADED']]);
  });

  it('accepts no version (deprecated path too), refuses unknown statuses, records hold and fail reasons', async () => {
    const sim = await start();
    const token = await login(sim);
    expect((await putStatus(sim, token, 2, { status: 'DOWNLOADED' }, '', '/photos')).status).toBe(200);
    expect(sim.photo(2)!.status).toBe('DOWNLOADED');
    expect((await putStatus(sim, token, 3, { status: 'SHREDDED' })).status).toBe(400);
    expect((await putStatus(sim, token, 999, { status: 'DOWNLOADED' })).status).toBe(404);

    await putStatus(sim, token, 4, { status: 'ON_HOLD' }, `?onHoldReason=${encodeURIComponent('No student matches 12345')}`);
    await putStatus(sim, token, 5, { status: 'FAILED' }, `?failedReason=${encodeURIComponent('Not a JPEG')}`);
    expect(sim.photo(4)!.statusHistory.at(-1)).toMatchObject({ status: 'ON_HOLD', reason: 'No student matches 12345' });
    expect(sim.photo(5)!.statusHistory.at(-1)).toMatchObject({ status: 'FAILED', reason: 'Not a JPEG' });
  });
});

describe('image bytes', () => {
  it('serves real JPEGs and PNGs with the right type, length and magic, near the requested size, each unique', async () => {
    const sim = await start({ photoCount: 20, imageBytes: 30_000, pngEvery: 5 });
    const token = await login(sim);
    const hashes = new Set<string>();
    let pngs = 0;
    for (const p of await list(sim, token, 'status=READY_FOR_DOWNLOAD&max=20')) {
      const { res, bytes } = await fetchBytes(bytesUrl(p));
      expect(res.status).toBe(200);
      expect(Number(res.headers.get('content-length'))).toBe(bytes.length);
      expect(Math.abs(bytes.length - 30_000)).toBeLessThan(1500);
      expect(bytes.equals(sim.photo(p.id)!.bytes)).toBe(true);
      hashes.add(createHash('sha256').update(bytes).digest('hex'));
      if (res.headers.get('content-type') === 'image/png') {
        pngs++;
        expect(bytes.subarray(0, 8).equals(PNG_MAGIC)).toBe(true);
        expect(PNG.sync.read(bytes)).toMatchObject({ width: 160, height: 200 });
      } else {
        expect(res.headers.get('content-type')).toBe('image/jpeg');
        expect(bytes.subarray(0, 3).equals(JPEG_MAGIC)).toBe(true);
        expect(jpeg.decode(bytes)).toMatchObject({ width: 160, height: 200 });
      }
    }
    expect(pngs).toBe(4);
    expect(hashes.size).toBe(20);
  });

  it('makes 1 MB and 5 MB images that still decode', async () => {
    for (const size of [1_000_000, 5_200_000]) {
      const sim = await start({ photoCount: 5, imageBytes: size });
      const jpegBytes = (await fetchBytes(`${sim.bytesBaseUrl}/${sim.photo(1)!.publicKey}.jpg`)).bytes;
      const pngBytes = (await fetchBytes(`${sim.bytesBaseUrl}/${sim.photo(5)!.publicKey}.png`)).bytes;
      expect(jpegBytes.length).toBeGreaterThanOrEqual(size * 0.98);
      expect(pngBytes.length).toBeGreaterThanOrEqual(size * 0.98);
      expect(jpeg.decode(jpegBytes, { maxMemoryUsageInMB: 1024 }).width).toBe(160);
      expect(PNG.sync.read(pngBytes).width).toBe(160);
    }
  });

  it('records whether X-Auth-Token was sent for bytes, keeps serving after status changes, 404s unknown keys', async () => {
    const sim = await start();
    const photo = sim.photo(1)!;
    const url = `${sim.bytesBaseUrl}/${photo.publicKey}.${photo.ext}`;
    await fetchBytes(url);
    await fetchBytes(url, { 'X-Auth-Token': 'leaked' });
    sim.setStatus(1, 'DOWNLOADED');
    expect((await fetchBytes(url)).res.status).toBe(200);
    expect((await fetchBytes(`${sim.bytesBaseUrl}/nope.jpg`)).res.status).toBe(404);
    const bytesRequests = sim.requests().filter((r) => r.path.startsWith('/storage/'));
    expect(bytesRequests.map((r) => [r.authHeader, r.status])).toEqual([
      [false, 200],
      [true, 200],
      [false, 200],
      [false, 404],
    ]);
  });

  it('replaceImage gives new bytes under a new key with a bumped version; the old key keeps the old bytes', async () => {
    const sim = await start();
    const old = { key: sim.photo(2)!.publicKey, version: sim.photo(2)!.version, bytes: sim.photo(2)!.bytes };
    const photo = sim.replaceImage(2);
    expect(photo.publicKey).not.toBe(old.key);
    expect(photo.version).toBe(old.version + 1);
    const fresh = (await fetchBytes(`${sim.bytesBaseUrl}/${photo.publicKey}.jpg`)).bytes;
    expect(fresh.equals(old.bytes)).toBe(false);
    expect(jpeg.decode(fresh).width).toBe(160);
    expect((await fetchBytes(`${sim.bytesBaseUrl}/${old.key}.jpg`)).bytes.equals(old.bytes)).toBe(true);

    const custom = sim.replaceImage(2, PNG.sync.write(Object.assign(new PNG({ width: 2, height: 2 }), { data: Buffer.alloc(16, 255) })));
    expect(custom.ext).toBe('png');
    expect((await fetchBytes(`${sim.bytesBaseUrl}/${custom.publicKey}.png`)).res.headers.get('content-type')).toBe('image/png');
  });

  it('generates 10,000 photos of 60 KB quickly and lists them fast', async () => {
    const t0 = performance.now();
    const sim = await start({ photoCount: 10_000, imageBytes: 60_000 });
    expect(performance.now() - t0).toBeLessThan(2000);
    const token = await login(sim);
    const t1 = performance.now();
    let total = 0;
    for (let offset = 0; offset < 10_000; offset += 1000) total += (await list(sim, token, `status=READY_FOR_DOWNLOAD&offset=${offset}&max=1000`)).length;
    expect(total).toBe(10_000);
    expect(performance.now() - t1).toBeLessThan(3000);
    expect(sim.photo(9_999)!.bytes.length).toBe(60_000);
  });
});

describe('latency', () => {
  it('delays every API and bytes response without serialising them', async () => {
    const sim = await start({ latencyMs: 150 });
    let t = performance.now();
    const token = await login(sim);
    expect(performance.now() - t).toBeGreaterThanOrEqual(140);
    t = performance.now();
    await fetchBytes(`${sim.bytesBaseUrl}/${sim.photo(1)!.publicKey}.jpg`);
    expect(performance.now() - t).toBeGreaterThanOrEqual(140);
    t = performance.now();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => api(sim, token, `/photo/${i + 1}`)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(performance.now() - t).toBeLessThan(600);
  });
});

describe('faults', () => {
  it('status faults answer instead of handling: no effect, Retry-After on 429', async () => {
    const sim = await start();
    const token = await login(sim);
    const version = sim.photo(1)!.version;
    for (const [kind, status] of [
      ['status500', 500],
      ['status502', 502],
      ['status503', 503],
      ['status401', 401],
      ['status404', 404],
      ['status409', 409],
    ] as const) {
      sim.faults.add({ kind, match: { method: 'PUT', photoId: 1 } });
      expect((await putStatus(sim, token, 1, { status: 'DOWNLOADED', version })).status).toBe(status);
    }
    expect(sim.photo(1)).toMatchObject({ status: 'READY_FOR_DOWNLOAD', version });

    sim.faults.add({ kind: 'status429', retryAfterSeconds: 7, match: { path: '/api/photo' } });
    const limited = await api(sim, token, '/photo?status=READY_FOR_DOWNLOAD');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect((await api(sim, token, '/photo?status=READY_FOR_DOWNLOAD')).status).toBe(200); // times defaults to 1
    expect(sim.faults.injected().map((f) => f.kind)).toEqual(['status500', 'status502', 'status503', 'status401', 'status404', 'status409', 'status429']);
  });

  it('reset breaks the connection mid-body', async () => {
    const sim = await start({ imageBytes: 100_000 });
    const photo = sim.photo(1)!;
    sim.faults.add({ kind: 'reset', match: { path: '/storage/' } });
    await expectBrokenResponse(() => fetch(`${sim.bytesBaseUrl}/${photo.publicKey}.jpg`));
    expect((await fetchBytes(`${sim.bytesBaseUrl}/${photo.publicKey}.jpg`)).bytes.length).toBe(100_000);
  });

  it('shortBody announces more than it sends', async () => {
    const sim = await start();
    const photo = sim.photo(1)!;
    sim.faults.add({ kind: 'shortBody', match: { photoId: 1 } });
    await expectBrokenResponse(() => fetch(`${sim.bytesBaseUrl}/${photo.publicKey}.jpg`));
    expect(sim.requests().at(-1)).toMatchObject({ status: 200, fault: 'shortBody' });
  });

  it('slow outlasts a client timeout, and a request whose client left has no effect', async () => {
    const sim = await start();
    const token = await login(sim);
    sim.faults.add({ kind: 'slow', delayMs: 300, match: { method: 'PUT' } });
    await expect(
      api(sim, token, '/photo/1', { method: 'PUT', body: JSON.stringify({ status: 'DOWNLOADED' }), signal: AbortSignal.timeout(100) }),
    ).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 350));
    expect(sim.photo(1)!.status).toBe('READY_FOR_DOWNLOAD');

    sim.faults.add({ kind: 'slow', delayMs: 200 });
    const t = performance.now();
    expect((await api(sim, token, '/photo/1')).status).toBe(200);
    expect(performance.now() - t).toBeGreaterThanOrEqual(190);
  });

  it('lostResponse applies the update but never answers', async () => {
    const sim = await start();
    const token = await login(sim);
    const version = sim.photo(3)!.version;
    sim.faults.add({ kind: 'lostResponse', match: { method: 'PUT', photoId: 3 } });
    await expect(putStatus(sim, token, 3, { status: 'DOWNLOADED', version })).rejects.toThrow();
    expect(sim.photo(3)).toMatchObject({ status: 'DOWNLOADED', version: version + 1 });
    // The client's retry with the version it read is now a conflict: it must re-read, not assume failure.
    expect((await putStatus(sim, token, 3, { status: 'DOWNLOADED', version })).status).toBe(409);
    expect(sim.requests().find((r) => r.fault === 'lostResponse')?.status).toBe(0);
  });

  it('malformedJson answers 200 with JSON that does not parse', async () => {
    const sim = await start();
    const token = await login(sim);
    sim.faults.add({ kind: 'malformedJson', match: { method: 'GET', path: /^\/api\/photos?$/ }, times: 2 });
    for (const path of ['/photo?status=READY_FOR_DOWNLOAD', '/photos?status=READY_FOR_DOWNLOAD']) {
      const res = await api(sim, token, path);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(() => JSON.parse(text)).toThrow();
    }
    expect(Array.isArray(await (await api(sim, token, '/photo/1')).json())).toBe(false);
    sim.faults.add({ kind: 'malformedJson', match: { path: '/api/photo/1' } });
    await expect((await api(sim, token, '/photo/1')).json()).rejects.toThrow();
  });

  it('Infinity, probability (deterministic per seed) and clear()', async () => {
    const counts: number[] = [];
    for (let run = 0; run < 2; run++) {
      const sim = await start({ seed: 42 });
      const token = await login(sim);
      sim.faults.add({ kind: 'status503', times: Infinity, probability: 0.5, match: { path: '/api/photo/' } });
      let failed = 0;
      for (let i = 0; i < 30; i++) if ((await api(sim, token, '/photo/1')).status === 503) failed++;
      counts.push(failed);
      sim.faults.clear();
      expect((await api(sim, token, '/photo/1')).status).toBe(200);
    }
    expect(counts[0]).toBeGreaterThan(3);
    expect(counts[0]).toBeLessThan(27);
    expect(counts[1]).toBe(counts[0]);
  });
});

describe('bad data', () => {
  it('serves corrupt bytes: HTML instead of an image, a truncated JPEG, an oversize image', async () => {
    const sim = await start({ pngEvery: 5 });
    sim.corruptPhoto(1, 'notImage');
    sim.corruptPhoto(5, 'truncatedJpeg'); // a PNG photo becomes a broken JPEG
    sim.corruptPhoto(3, 'oversize', { sizeBytes: 3_000_000 });
    const get = (id: number) => fetchBytes(`${sim.bytesBaseUrl}/${sim.photo(id)!.publicKey}.${sim.photo(id)!.ext}`);

    const html = (await get(1)).bytes;
    expect(html.toString('utf8')).toMatch(/^<!DOCTYPE html>/);
    expect(html.subarray(0, 3).equals(JPEG_MAGIC)).toBe(false);

    const truncated = await get(5);
    expect(truncated.res.headers.get('content-type')).toBe('image/jpeg');
    expect(Number(truncated.res.headers.get('content-length'))).toBe(truncated.bytes.length);
    expect(truncated.bytes.subarray(0, 3).equals(JPEG_MAGIC)).toBe(true);
    expect(truncated.bytes.subarray(-2).equals(Buffer.from([0xff, 0xd9]))).toBe(false);
    expect(() => jpeg.decode(truncated.bytes)).toThrow();

    const big = (await get(3)).bytes;
    expect(big.length).toBeGreaterThanOrEqual(3_000_000);
    expect(jpeg.decode(big).width).toBe(160);
  });

  it('gives people unusable identifiers or hostile custom fields, via corruptPhoto or addPhoto', async () => {
    const sim = await start();
    const token = await login(sim);
    sim.corruptPhoto(1, 'nullIdentifier');
    sim.corruptPhoto(2, 'blankIdentifier');
    sim.corruptPhoto(3, 'unknownStudent');
    const added = sim.addPhoto({ corruption: 'quotesAndUnicode' });
    const get = async (id: number) => (await (await api(sim, token, `/photo/${id}`)).json()) as ListedPhoto;
    expect((await get(1)).person.identifier).toBeNull();
    expect((await get(2)).person.identifier?.trim()).toBe('');
    const unknown = (await get(3)).person.identifier!;
    expect(unknown).toMatch(/^999\d{6}$/);
    expect(studentNumberFor({ identifier: unknown })).toBeNull();
    const hostile = (await get(added.id)).person.customFields;
    expect(hostile['First Name']).toContain("'); DROP TABLE students; --");
    expect(Object.values(hostile).join('')).toMatch(/🎓/u);
    expect(studentNumberFor((await get(added.id)).person)).not.toBeNull();
  });

  it('addPhoto appends photos with given people, statuses and bytes; a known identifier reuses the person', async () => {
    const sim = await start({ photoCount: 3 });
    const existing = sim.photo(2)!.person;
    const again = sim.addPhoto({ person: { identifier: existing.identifier }, dateCreated: '2030-01-01T00:00:00Z' });
    expect(again.id).toBe(4);
    expect(again.person.id).toBe(existing.id);
    expect(again.status).toBe('READY_FOR_DOWNLOAD');
    const other = sim.addPhoto({ person: { identifier: 'A-77' }, status: 'APPROVED', bytes: Buffer.from('custom'), contentType: 'image/jpeg' });
    expect(other.person.identifier).toBe('A-77');
    expect(other.bytes.toString()).toBe('custom');
    expect(() => sim.addPhoto({ status: 'BOGUS' })).toThrow();
    expect(() => sim.setStatus(99, 'DOWNLOADED')).toThrow();
  });
});

describe('seeded people', () => {
  it('is deterministic and mixes clean, zero-lost and spaced identifiers plus a unicode name', () => {
    const people = seedPeople(50, 3);
    expect(seedPeople(50, 3)).toEqual(people);
    expect(seedPeople(50, 4)).not.toEqual(people);
    const ids = people.map((p) => p.identifier!);
    expect(ids.some((id) => /^\d{9}$/.test(id))).toBe(true);
    expect(ids.some((id) => /^[1-9]\d{5,7}$/.test(id))).toBe(true);
    expect(ids.some((id) => id !== id.trim())).toBe(true);
    expect(people.some((p) => p.customFields['Full Name'] === "Zoë O'Brien")).toBe(true);
    const numbers = people.map(studentNumberFor);
    expect(numbers.every((n) => n !== null && /^\d{9}$/.test(n))).toBe(true);
    expect(new Set(numbers).size).toBe(50);
    for (const p of people) expect(p.customFields['Student ID']).toBe(studentNumberFor(p));
  });

  it('with unmatchedEvery, one person has no identifier and others are outside the student range', async () => {
    const people = seedPeople(40, 1, 10);
    const unmatched = people.filter((p) => studentNumberFor(p) === null);
    expect(unmatched).toHaveLength(4);
    expect(unmatched.filter((p) => p.identifier === null)).toHaveLength(1);
    expect(unmatched.filter((p) => p.identifier?.startsWith('999'))).toHaveLength(3);

    const sim = await start({ photoCount: 40, unmatchedEvery: 10 });
    expect(sim.photos().map((p) => p.person.identifier)).toEqual(people.map((p) => p.identifier));
  });

  it('uses given people cyclically', async () => {
    const people = seedPeople(2, 9);
    const sim = await start({ photoCount: 5, people });
    expect(sim.photos().map((p) => p.person.identifier)).toEqual([0, 1, 0, 1, 0].map((i) => people[i]!.identifier));
  });
});
