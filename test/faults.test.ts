/**
 * Faults a campus network, CloudCard and its object storage produce, one at a time, against a whole run:
 * runSync with the real CloudCardClient against the simulator on loopback, into a real database (SQLite, and
 * PostgreSQL when TEST_PG_URL is set). After each, photo by photo: the outcome is what the mapping asks for,
 * nothing is acknowledged that is not stored, stored bytes are byte-exact (see support/photo-audit.ts).
 */
import { describe, expect, it } from 'vitest';
import { CloudCardError } from '../src/errors.js';
import { auditPhotos, problems, type ExpectedSetAside } from './support/photo-audit.js';
import { type Harness, harnessPerTest } from './support/sync-harness.js';

const harness = harnessPerTest();

async function expectClean(h: Harness, setAside: ReadonlyMap<number, ExpectedSetAside> = new Map()) {
  const report = await auditPhotos({ sim: h.sim, knex: h.knex, photoLog: h.tables.photoLog, jobSchema: h.schema, expectSetAside: setAside });
  expect(problems(report)).toEqual({});
  expect(report.downloaded + report.setAside).toBe(h.sim.photos().length);
  return report;
}

const kinds = (h: Harness) => h.sim.faults.injected().map((f) => f.kind);

describe.each(['sqlite', 'postgres'] as const)('faults against a whole run (%s)', (dialect) => {
  it('rides out 500/502/503 bursts on the list, the bytes and the status PUT', async (ctx) => {
    const h = await harness(ctx, dialect);
    h.sim.faults.add({ kind: 'status500', match: { method: 'GET', path: '/api/photo' }, times: 2 });
    h.sim.faults.add({ kind: 'status502', match: { path: '/storage/' }, times: 3 });
    h.sim.faults.add({ kind: 'status503', match: { method: 'PUT' }, times: 3 });
    const client = h.newClient();
    const summary = await h.run({ client });
    expect(summary.counts.stored).toBe(12);
    expect(summary.counts.acknowledged).toBe(12);
    expect(kinds(h).sort()).toEqual(['status500', 'status500', 'status502', 'status502', 'status502', 'status503', 'status503', 'status503']);
    expect(client.stats.retries).toBe(8);
    await expectClean(h);
  });

  it('waits as long as a 429 Retry-After asks, then goes on', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 3 } });
    h.sim.faults.add({ kind: 'status429', match: { method: 'GET', path: '/api/photo' }, retryAfterSeconds: 1 });
    const summary = await h.run();
    expect(kinds(h)).toEqual(['status429']);
    expect(summary.durationMs).toBeGreaterThanOrEqual(950);
    expect(summary.counts.acknowledged).toBe(3);
    await expectClean(h);
  });

  it('retries a connection reset mid-body (bytes and list) and a reset after a PUT took effect', async (ctx) => {
    const h = await harness(ctx, dialect);
    h.sim.faults.add({ kind: 'reset', match: { path: '/storage/' }, times: 3 });
    h.sim.faults.add({ kind: 'reset', match: { method: 'GET', path: '/api/photo' }, times: 1 });
    h.sim.faults.add({ kind: 'reset', match: { method: 'PUT', photoId: 4 }, times: 1 });
    const summary = await h.run();
    expect(kinds(h).filter((k) => k === 'reset')).toHaveLength(5);
    expect(summary.counts.acknowledged).toBe(12);
    // The PUT that took effect before the reset is not applied twice.
    expect(h.sim.photo(4)!.statusHistory.filter((e) => e.status === 'DOWNLOADED')).toHaveLength(1);
    await expectClean(h);
  });

  it('never stores a body shorter than its Content-Length', async (ctx) => {
    const h = await harness(ctx, dialect);
    h.sim.faults.add({ kind: 'shortBody', match: { path: '/storage/' }, times: 4 });
    h.sim.faults.add({ kind: 'shortBody', match: { method: 'GET', path: '/api/photo' }, times: 1 });
    const summary = await h.run();
    expect(kinds(h)).toHaveLength(5);
    expect(summary.counts.acknowledged).toBe(12);
    await expectClean(h);
  });

  it('a short body on every attempt leaves the photo for the next run, unstored', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 4 } });
    h.sim.faults.add({ kind: 'shortBody', match: { photoId: 2, path: '/storage/' }, times: Infinity });
    const first = await h.run();
    expect(first.problems).toEqual([expect.objectContaining({ photoId: 2, kind: 'left', code: 'truncated' })]);
    expect(h.sim.photo(2)!.status).toBe('READY_FOR_DOWNLOAD');
    await expectClean(h, new Map([[2, { status: 'READY_FOR_DOWNLOAD' }]]));
    h.sim.faults.clear();
    await h.run();
    await expectClean(h);
  });

  it('gives up on a response slower than the timeout and retries it', async (ctx) => {
    const h = await harness(ctx, dialect, { client: { timeoutMs: 300 }, sim: { photoCount: 6 } });
    h.sim.faults.add({ kind: 'slow', delayMs: 1_500, match: { path: '/storage/', photoId: 3 } });
    h.sim.faults.add({ kind: 'slow', delayMs: 1_500, match: { method: 'GET', path: '/api/photo' } });
    h.sim.faults.add({ kind: 'slow', delayMs: 1_500, match: { method: 'PUT', photoId: 5 } });
    const summary = await h.run();
    expect(kinds(h)).toEqual(['slow', 'slow', 'slow']);
    expect(summary.counts.acknowledged).toBe(6);
    expect(summary.durationMs).toBeLessThan(5_000);
    await expectClean(h);
  });

  it('logs in again when the session is revoked mid-run (and on a stray 401)', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 20 }, concurrency: 2 });
    let downloaded = 0;
    h.sim.onStatusChange((p) => {
      if (p.status === 'DOWNLOADED' && ++downloaded === 5) h.sim.revokeSessions();
    });
    h.sim.faults.add({ kind: 'status401', match: { method: 'PUT', photoId: 12 } });
    const client = h.newClient();
    const summary = await h.run({ client });
    expect(summary.counts.acknowledged).toBe(20);
    expect(client.stats.relogins).toBeGreaterThanOrEqual(2);
    expect(h.sim.sessions().issued).toBeGreaterThanOrEqual(3);
    await expectClean(h);
  });

  it('404 on the bytes (deleted between list and download) leaves the photo; the next run stores it', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 5 } });
    h.sim.faults.add({ kind: 'status404', match: { path: '/storage/', photoId: 3 }, times: Infinity });
    const first = await h.run();
    expect(first.problems).toEqual([expect.objectContaining({ photoId: 3, kind: 'left', code: 'bytes-missing' })]);
    const p3 = h.sim.photo(3)!;
    expect(p3.status).toBe('READY_FOR_DOWNLOAD');
    expect(p3.statusHistory).toHaveLength(1); // not touched at all
    await expectClean(h, new Map([[3, { status: 'READY_FOR_DOWNLOAD' }]]));
    h.sim.faults.clear();
    const second = await h.run();
    expect(second.counts.stored).toBe(1);
    await expectClean(h);
  });

  it('a photo replaced between COMMIT and PUT (stale version) is not acknowledged at the old version; the new image is stored', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 3 }, concurrency: 1 });
    const oldBytes = h.sim.photo(1)!.bytes;
    const oldVersion = h.sim.photo(1)!.version;
    let replaced = false;
    // With one photo in flight, the first write is photo 1's; the card office replaces it before we PUT.
    const first = await h.run({
      hooks: {
        afterWrite: () => {
          if (!replaced) {
            replaced = true;
            h.sim.replaceImage(1);
          }
        },
      },
    });
    expect(first.problems).toEqual([expect.objectContaining({ photoId: 1, kind: 'stored', code: 'ack-conflict' })]);
    // The PUT for the old version was refused; the poll's next sweep found the new version and stored it.
    const p1 = h.sim.photo(1)!;
    expect(p1.statusHistory.map((e) => [e.status, e.version])).toEqual([
      ['READY_FOR_DOWNLOAD', oldVersion],
      ['READY_FOR_DOWNLOAD', oldVersion + 1],
      ['DOWNLOADED', oldVersion + 2],
    ]);
    expect(p1.bytes.equals(oldBytes)).toBe(false);
    const rows = await h.knex(h.tables.photoLog).where('CLOUDCARD_PHOTO_ID', 1).orderBy('ROW_ID');
    expect(rows.map((r: { CLOUDCARD_VERSION: number }) => Number(r.CLOUDCARD_VERSION))).toEqual([oldVersion, oldVersion + 1]);
    expect(Buffer.from(rows[0].PHOTO as Buffer).equals(oldBytes)).toBe(true);
    expect(Buffer.from(rows[1].PHOTO as Buffer).equals(p1.bytes)).toBe(true);
    // The old version stays unacknowledged in the ledger until the next run settles it, writing nothing.
    const audit = await auditPhotos({ sim: h.sim, knex: h.knex, photoLog: h.tables.photoLog, jobSchema: h.schema });
    expect(audit.ledgerDisagrees).toEqual([`1:${oldVersion}: committed but never acknowledged`]);
    const second = await h.run();
    expect(second.reconciled).toBe(1);
    expect(second.counts.stored).toBe(0);
    expect(h.sim.photo(1)!.statusHistory).toHaveLength(3);
    await expectClean(h);
  });

  it('a PUT that committed but whose response was lost counts as acknowledged, once', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 5 } });
    h.sim.faults.add({ kind: 'lostResponse', match: { method: 'PUT', photoId: 2 } });
    const summary = await h.run();
    expect(kinds(h)).toEqual(['lostResponse']);
    expect(summary.counts.acknowledged).toBe(5);
    expect(summary.problems).toEqual([]);
    expect(h.sim.photo(2)!.statusHistory.filter((e) => e.status === 'DOWNLOADED')).toHaveLength(1);
    await expectClean(h);
  });

  it('malformed JSON in the list is retried; if it never parses the run fails having acknowledged nothing', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 4 } });
    h.sim.faults.add({ kind: 'malformedJson', match: { method: 'GET', path: '/api/photo' }, times: Infinity });
    await expect(h.run()).rejects.toThrow(CloudCardError);
    await expect(h.run()).rejects.toThrow(/malformed JSON/);
    expect(h.sim.photos().every((p) => p.status === 'READY_FOR_DOWNLOAD' && p.statusHistory.length === 1)).toBe(true);
    expect(Number((await h.knex(h.tables.photoLog).count({ n: '*' }))[0]?.n)).toBe(0);

    h.sim.faults.clear();
    h.sim.faults.add({ kind: 'malformedJson', match: { method: 'GET', path: '/api/photo' }, times: 1 });
    const summary = await h.run();
    expect(summary.counts.acknowledged).toBe(4);
    await expectClean(h);
  });

  it.for(['hold', 'fail', 'leave'] as const)('unmatched photos (null, blank, unknown identifier) with unmatched.action %s', async (action, ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 6 }, mapping: { unmatched: { action, reason: 'Card office: check the student ID.' } } });
    h.sim.corruptPhoto(2, 'nullIdentifier');
    h.sim.corruptPhoto(3, 'blankIdentifier');
    h.sim.corruptPhoto(4, 'unknownStudent');
    const versions = [2, 3, 4].map((id) => h.sim.photo(id)!.version);
    const summary = await h.run();
    expect(summary.counts.stored).toBe(3);
    expect(summary.counts.unmatched).toBe(3);
    const status = action === 'hold' ? 'ON_HOLD' : action === 'fail' ? 'FAILED' : 'READY_FOR_DOWNLOAD';
    const hint = /Card office: check the student ID\./;
    const expected = new Map<number, ExpectedSetAside>([
      [2, { status, reason: /Photo 2 has no person\.identifier to match a student by\..*Card office/ }],
      [3, { status, reason: /Photo 3 has no person\.identifier/ }],
      [4, { status, reason: /Photo 4: no student found by the lookup query for key "999000004"/ }],
    ]);
    await expectClean(h, expected);
    if (action === 'leave') {
      // Left photos are untouched in CloudCard; the reason is in the run's report.
      expect([2, 3, 4].map((id) => h.sim.photo(id)!.version)).toEqual(versions);
      expect(summary.problems.map((p) => p.code).sort()).toEqual(['no-identifier', 'no-identifier', 'no-student']);
      for (const p of summary.problems) expect(p.reason).toMatch(expected.get(p.photoId)!.reason!);
    } else {
      for (const id of [2, 3, 4]) expect(h.sim.photo(id)!.statusHistory.at(-1)?.reason).toMatch(hint);
    }
  });

  it.for(['fail', 'hold', 'leave'] as const)('non-image bytes, a truncated JPEG and an oversize image with badImage.action %s', async (action, ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 6 }, mapping: { badImage: { action } } });
    h.sim.corruptPhoto(2, 'notImage');
    h.sim.corruptPhoto(3, 'truncatedJpeg');
    h.sim.corruptPhoto(4, 'oversize', { sizeBytes: 300_000 });
    const summary = await h.run();
    expect(summary.counts.stored).toBe(3);
    const status = action === 'hold' ? 'ON_HOLD' : action === 'fail' ? 'FAILED' : 'READY_FOR_DOWNLOAD';
    const expected = new Map<number, ExpectedSetAside>([
      [2, { status, reason: /photo 2: downloaded bytes are not a JPEG or PNG image \(\d+ bytes, starting 3c 21 44 4f/ }],
      [3, { status, reason: /photo 3: JPEG is cut off/ }],
      [4, { status, reason: /photo 4: image is larger than the 200000-byte limit/ }],
    ]);
    await expectClean(h, expected);
    expect(summary.problems.map((p) => p.code).sort()).toEqual(['not-an-image', 'too-large', 'truncated-image']);
    for (const p of summary.problems) expect(p.reason).toMatch(expected.get(p.photoId)!.reason!);
  });

  it('custom fields with quotes, SQL and unicode are stored literally', async (ctx) => {
    const h = await harness(ctx, dialect, { sim: { photoCount: 3 } });
    const fields = h.sim.corruptPhoto(2, 'quotesAndUnicode').person.customFields;
    await h.run();
    await expectClean(h);
    const row = await h.knex(h.tables.photoLog).where('CLOUDCARD_PHOTO_ID', 2).first('FULL_NAME', 'NOTES', 'NICKNAME');
    expect(row).toEqual({ FULL_NAME: fields['Full Name'], NOTES: fields.Notes, NICKNAME: fields.Nickname });
    expect(fields.Notes).toContain("'; DROP TABLE students; --");
    // The students table the injection text names is intact.
    expect(Number((await h.knex(h.tables.students).count({ n: '*' }))[0]?.n)).toBe(3);
  });
});
