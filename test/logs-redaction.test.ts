/**
 * The whole output of a real run (CLI, LOG_LEVEL=debug, JSON lines) must carry photoId and runId on every
 * photo-level line, and must never contain the persistent access token, any session token CloudCard issued
 * during the run, or the database password. Session tokens are captured by a recording proxy between the
 * CLI and the simulator, so the test knows exactly which tokens were in play.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/simulator/index.js';
import { postgresCampus, sqliteCampus, syncEnv, type CampusDb } from './support/cli-e2e.js';
import { runCli } from './support/cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Forwards every request to the simulator and remembers each session token it hands out. */
async function tokenRecordingProxy(sim: Simulator): Promise<{ baseUrl: string; tokens: string[]; server: Server }> {
  const target = new URL(sim.baseUrl);
  const tokens: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
        (up) => {
          const body: Buffer[] = [];
          up.on('data', (c: Buffer) => body.push(c));
          up.on('end', () => {
            const buf = Buffer.concat(body);
            const found = /"tokenValue"\s*:\s*"([^"]+)"/.exec(buf.toString('utf8'));
            if (found?.[1]) tokens.push(found[1]);
            res.writeHead(up.statusCode ?? 502, up.headers).end(buf);
          });
        },
      );
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { baseUrl: `http://127.0.0.1:${port}${target.pathname}`, tokens, server };
}

it('a debug-level run prints no token or password, and tags photo lines with photoId and runId', async () => {
  let db: CampusDb | { skip: string } = await postgresCampus(10, { role: true });
  let password: string | undefined;
  if ('skip' in db) {
    console.log(`${db.skip}; the database-password check is skipped, the token checks run against SQLite`);
    db = await sqliteCampus(10);
  } else {
    password = decodeURIComponent(new URL(db.url).password);
  }
  const campus = db;
  cleanups.push(() => campus.close());
  const accessToken = `pat-${randomBytes(16).toString('hex')}`;
  const sim = await startSimulator({ photoCount: 10, seed: 1, unmatchedEvery: 9, imageBytes: 3_000, accessToken });
  cleanups.push(() => sim.close());
  const proxy = await tokenRecordingProxy(sim);
  // One 401 mid-run: the client must log in again, so two session tokens are in play.
  sim.faults.add({ kind: 'status401', match: { method: 'PUT' }, times: 1 });

  const res = await runCli(['run'], syncEnv({ baseUrl: proxy.baseUrl, accessToken }, campus, { LOG_LEVEL: 'debug', CLOUDCARD_SYNC_CONCURRENCY: '2' }));
  expect(res.code, res.output).toBe(0);
  expect(proxy.tokens.length).toBeGreaterThanOrEqual(2);
  expect(sim.faults.injected().map((f) => f.kind)).toEqual(['status401']);

  const secrets: Array<[string, string]> = [['persistent access token', accessToken], ...proxy.tokens.map((t, i) => [`session token ${i + 1}`, t] as [string, string])];
  if (password) secrets.push(['database password', password]);
  for (const [what, value] of secrets) expect(res.output.includes(value), `${what} appears in the output`).toBe(false);

  // Every photo-level line names its photo and its run.
  const lines = res.output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(lines.some((l) => l.level === 'debug')).toBe(true);
  const photoLines = lines.filter((l) => l.photoId !== undefined);
  expect(photoLines.filter((l) => l.msg === 'photo stored').length).toBe(9);
  for (const l of photoLines) expect(l.runId, JSON.stringify(l)).toMatch(/^[0-9a-f-]{36}$/);
  // Lines that talk about one photo in words carry its id as a field too.
  for (const l of lines.filter((l) => typeof l.msg === 'string' && /^Photo \d+/.test(l.msg))) expect(l.photoId, JSON.stringify(l)).toBeDefined();
});
