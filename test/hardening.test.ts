/**
 * Hostile and broken input: bad mapping files (through the real CLI), SQL injection attempts through mapping
 * identifiers and through CloudCard's field values, oversized answers, and image types decided by magic bytes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudCardClient } from '../src/cloudcard/client.js';
import { CloudCardError, PhotoError } from '../src/errors.js';
import { auditPhotos, problems } from './support/photo-audit.js';
import { harnessPerTest } from './support/sync-harness.js';
import { buildIfStale, runCli } from './support/cli.js';

const harness = harnessPerTest();

describe('mapping errors through the CLI name the file, the key and the allowed values', () => {
  let dir: string;
  beforeAll(() => {
    buildIfStale();
    dir = mkdtempSync(path.join(tmpdir(), 'cc-hardening-'));
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const good = `target:\n  table: students\n  keyColumn: STUDENT_ID\n  blobColumn: PHOTO\n`;
  const cases: Array<[string, string, RegExp[]]> = [
    ['unknown key', `${good}  tabel: students\n`, [/target: unknown key\(s\) 'tabel'/]],
    ['unknown top-level key', `${good}unmached:\n  action: hold\n`, [/\(top level\): unknown key\(s\) 'unmached'/]],
    ['wrong enum', `${good}  mode: upsertt\n`, [/target\.mode: must be one of: upsert, update, insert/]],
    ['wrong enum (unmatched.action)', `${good}unmatched:\n  action: park\n`, [/unmatched\.action: must be one of: leave, hold, fail/]],
    ['bad table identifier', good.replace('table: students', "table: 'students; DROP TABLE x'"), [/target\.table: must be a plain table name/]],
    ['bad column identifier', good.replace('keyColumn: STUDENT_ID', `keyColumn: 'STUDENT_ID" --'`), [/target\.keyColumn: must be a plain SQL name/]],
    ['bad extra column name', `${good}  columns:\n    "x = 1; DROP TABLE students; --": { from: now }\n`, [/target\.columns\..*must be a plain SQL name/]],
    ['missing required key', good.replace('  blobColumn: PHOTO\n', ''), [/target\.blobColumn: /]],
    ['invalid YAML', `${good}  columns: {PHOTO_AT: [\n`, [/is not valid YAML/]],
  ];

  it.for(cases)('%s', async ([, text, expected]) => {
    const file = path.join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, text);
    const r = await runCli(['run', '--no-progress', '--mapping', file], {
      CLOUDCARD_ACCESS_TOKEN: 'not-used-token',
      DATABASE_URL: `sqlite:${path.join(dir, 'never-opened.sqlite')}`,
    });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(file);
    for (const re of expected) expect(r.stderr).toMatch(re);
  });
});

describe.each(['sqlite', 'postgres'] as const)('hostile CloudCard data is bound, never spliced (%s)', (dialect) => {
  it("an identifier like ' OR '1'='1 finds no student (bound), is held with its literal text, and the tables are intact", async (ctx) => {
    // No key pattern, so the hostile text reaches the lookup query; if it were spliced, it would match every student.
    const h = await harness(ctx, dialect, {
      sim: { photoCount: 4 },
      mapping: ({ quotedStudents }) => ({
        studentKey: {
          from: 'identifier',
          clean: { trim: true, zeroPad: 9 },
          lookup: { sql: `select "STUDENT_ID" from ${quotedStudents} where "STUDENT_ID" = :key` },
        },
      }),
    });
    const hostile = ["000000001' OR '1'='1", "' OR 1=1 --", "x'; DROP TABLE students; --"];
    const ids = hostile.map((identifier) => h.sim.addPhoto({ person: { identifier } }).id);
    await h.seedStudents();
    const studentsBefore = Number((await h.knex(h.tables.students).count({ n: '*' }))[0]?.n);
    const summary = await h.run();

    expect(summary.counts.stored).toBe(4);
    for (const [i, id] of ids.entries()) {
      const photo = h.sim.photo(id)!;
      expect(photo.status).toBe('ON_HOLD');
      expect(photo.statusHistory.at(-1)?.reason).toContain(`no student found by the lookup query for key "${hostile[i]!.trim()}"`);
    }
    expect(Number((await h.knex(h.tables.students).count({ n: '*' }))[0]?.n)).toBe(studentsBefore);
    const report = await auditPhotos({
      sim: h.sim,
      knex: h.knex,
      photoLog: h.tables.photoLog,
      jobSchema: h.schema,
      expectSetAside: new Map(ids.map((id) => [id, { status: 'ON_HOLD' as const }])),
    });
    expect(problems(report)).toEqual({});
  });

  it('values full of quotes and SQL (identifier, custom field, constant) are stored literally in their columns', async (ctx) => {
    const notes = `it's "quoted" ; DROP TABLE students; -- \\ back\\slash`;
    const constant = "'); DELETE FROM students; --";
    const h = await harness(ctx, dialect, {
      sim: { photoCount: 2 },
      // No key pattern, no lookup: the identifier goes straight into the key column of an insert.
      mapping: ({ tables }) => ({
        studentKey: { from: 'identifier', clean: { trim: false } },
        target: {
          table: tables.photoLog,
          keyColumn: 'STUDENT_ID',
          blobColumn: 'PHOTO',
          mode: 'insert',
          keyIsUnique: false,
          columns: {
            CLOUDCARD_PHOTO_ID: { from: 'photo.id' },
            CLOUDCARD_VERSION: { from: 'photo.version' },
            FULL_NAME: { value: constant },
            NOTES: { customField: 'Notes' },
          },
        },
      }),
    });
    const identifier = "' OR 1=1"; // fits STUDENT_ID varchar(9)
    const added = h.sim.addPhoto({ person: { identifier, customFields: { Notes: notes } } });
    const studentsBefore = Number((await h.knex(h.tables.students).count({ n: '*' }))[0]?.n);
    const summary = await h.run();
    expect(summary.counts.stored).toBe(3);
    const row = await h.knex(h.tables.photoLog).where('CLOUDCARD_PHOTO_ID', added.id).first('STUDENT_ID', 'FULL_NAME', 'NOTES');
    expect(row).toEqual({ STUDENT_ID: identifier, FULL_NAME: constant, NOTES: notes });
    expect(Number((await h.knex(h.tables.students).count({ n: '*' }))[0]?.n)).toBe(studentsBefore);
    expect(h.sim.photo(added.id)!.status).toBe('DOWNLOADED');
  });

  it('image type comes from the magic bytes: a PNG at a .jpg URL is stored as PNG; an HTML page at .jpg is refused', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 5, pngEvery: 5 } });
    const png = h.sim.photo(5)!.bytes;
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const disguised = h.sim.addPhoto({ bytes: png, contentType: 'image/jpeg', person: { identifier: h.sim.photo(1)!.person.identifier } });
    expect(disguised.ext).toBe('jpg');
    const html = h.sim.addPhoto({ corruption: 'notImage', ext: 'jpg', person: { identifier: h.sim.photo(2)!.person.identifier } });
    expect(html.ext).toBe('jpg');
    const summary = await h.run();
    expect(summary.problems.map((p) => [p.photoId, p.code])).toEqual([[html.id, 'not-an-image']]);
    const stored = await h.knex(h.tables.photoLog).where('CLOUDCARD_PHOTO_ID', disguised.id).first('PHOTO_TYPE', 'PHOTO');
    expect(stored.PHOTO_TYPE).toBe('image/png');
    expect(Buffer.from(stored.PHOTO as Buffer).equals(png)).toBe(true);
    expect(h.sim.photo(html.id)!.status).toBe('FAILED');
    expect(h.sim.photo(html.id)!.statusHistory.at(-1)?.reason).toMatch(/not a JPEG or PNG image .*starting 3c 21 44 4f/);
  });
});

describe('answer bodies are size-bounded', () => {
  let server: Server;
  let base: string;
  let sentBytes = 0;
  let mode: 'declared-huge' | 'endless-chunked' | 'endless-image' = 'declared-huge';
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url?.startsWith('/api/authentication-token')) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tokenValue: 'session-token-for-bounds' }));
        return;
      }
      if (req.url?.startsWith('/api/person/me/logout')) {
        res.writeHead(204).end();
        return;
      }
      sentBytes = 0;
      if (mode === 'declared-huge') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 ** 3) });
        res.write('[');
        return; // never finishes: the client must refuse on the header alone
      }
      // No Content-Length: stream until the client hangs up.
      res.writeHead(200, { 'content-type': mode === 'endless-image' ? 'image/jpeg' : 'application/json' });
      const chunk = Buffer.alloc(256 * 1024, mode === 'endless-image' ? 0xff : 0x20);
      const pump = () => {
        while (!res.destroyed && sentBytes < 512 * 1024 ** 2) {
          sentBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.write(mode === 'endless-image' ? Buffer.from([0xff, 0xd8, 0xff]) : '[');
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const client = () => new CloudCardClient({ baseUrl: `${base}/api`, accessToken: 'pat-for-bounds-test', timeoutMs: 10_000, maxRetries: 0 });

  it('refuses a photo list whose Content-Length is 10 GB, without reading it', async () => {
    mode = 'declared-huge';
    const started = Date.now();
    await expect(client().listPhotos('READY_FOR_DOWNLOAD', 0, 1000)).rejects.toThrow(CloudCardError);
    await expect(client().listPhotos('READY_FOR_DOWNLOAD', 0, 1000)).rejects.toThrow(/too large/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('stops reading an endless photo list (no Content-Length) just past the 64 MB bound', async () => {
    mode = 'endless-chunked';
    await expect(client().listPhotos('READY_FOR_DOWNLOAD', 0, 1000)).rejects.toThrow(/too large.*67108864/);
    await new Promise((r) => setTimeout(r, 100));
    expect(sentBytes).toBeLessThan(80 * 1024 ** 2);
  });

  it('stops reading an endless image at the mapping limit and names the limit', async () => {
    mode = 'endless-image';
    const err = await client()
      .downloadBytes({ id: 77, status: 'READY_FOR_DOWNLOAD', externalURL: `${base}/storage/x.jpg` }, { maxBytes: 1024 * 1024 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PhotoError);
    expect((err as PhotoError).code).toBe('too-large');
    expect((err as PhotoError).message).toMatch(/photo 77: image is larger than the 1048576-byte limit \(stopped after \d+ bytes\)/);
    await new Promise((r) => setTimeout(r, 100));
    expect(sentBytes).toBeLessThan(16 * 1024 ** 2);
  });
});
