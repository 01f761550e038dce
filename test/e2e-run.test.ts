/**
 * The whole job end to end, the way campus IT runs it: the built CLI as a child process, the simulator
 * as CloudCard on loopback, a real database. Checks the promises that matter to the card office: the bytes
 * in the table are the bytes CloudCard served, byte for byte; only stored photos end DOWNLOADED; unmatched
 * photos are handled as the mapping says; a second run does nothing new.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoStudents } from '../src/commands/demo.js';
import { startSimulator, studentNumberFor, type Simulator } from '../src/simulator/index.js';
import { runCli } from './support/cli.js';
import { DIALECTS, type AcquiredDatabase } from './support/databases.js';

const PHOTOS = 30;
const UNMATCHED_EVERY = 7;

for (const dialect of DIALECTS.filter((d) => ['sqlite', 'postgres', 'mysql'].includes(d.name))) {
  describe(`run --once end to end into ${dialect.name}`, () => {
    let db: AcquiredDatabase | undefined;
    let skip: string | undefined;
    let sim: Simulator;
    let dir: string;
    let table: string;
    let env: Record<string, string>;

    beforeAll(async () => {
      const got = await dialect.acquire();
      if ('skip' in got) return void (skip = got.skip);
      db = got;
      sim = await startSimulator({ photoCount: PHOTOS, unmatchedEvery: UNMATCHED_EVERY, pngEvery: 4 });
      await seedDemoStudents(db.knex, PHOTOS, { unmatchedEvery: UNMATCHED_EVERY, schema: db.schema });
      table = db.schema ? `${db.schema}.students` : 'students';
      dir = mkdtempSync(path.join(tmpdir(), 'cc-e2e-'));
      writeFileSync(
        path.join(dir, 'mapping.json'),
        JSON.stringify({
          studentKey: { from: 'identifier', clean: { trim: true, zeroPad: 9, pattern: '^\\d{9}$' } },
          target: {
            table,
            keyColumn: 'STUDENT_ID',
            blobColumn: 'PHOTO',
            mode: 'update',
            columns: { PHOTO_UPDATED_AT: { from: 'now' }, CLOUDCARD_PHOTO_ID: { from: 'photo.id' }, PHOTO_TYPE: { from: 'photo.contentType' } },
          },
          unmatched: { action: 'hold', reason: 'Check the student ID.' },
        }),
      );
      env = {
        CLOUDCARD_BASE_URL: sim.baseUrl,
        CLOUDCARD_ACCESS_TOKEN: sim.accessToken,
        DATABASE_URL: db.url,
        ...(db.schema ? { CLOUDCARD_SYNC_SCHEMA: db.schema } : {}),
        CLOUDCARD_SYNC_MAPPING: path.join(dir, 'mapping.json'),
        CLOUDCARD_SYNC_PAGE_SIZE: '7', // several pages, and a list that shrinks under the pager
      };
    });

    afterAll(async () => {
      await sim?.close();
      await db?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const rows = (knex: Knex) =>
      knex(table).select('STUDENT_ID', 'PHOTO', 'CLOUDCARD_PHOTO_ID', 'PHOTO_TYPE') as Promise<
        Array<{ STUDENT_ID: string; PHOTO: Buffer | null; CLOUDCARD_PHOTO_ID: number | string | null; PHOTO_TYPE: string | null }>
      >;

    it('stores every matched photo byte for byte and marks only those DOWNLOADED', async (ctx) => {
      if (skip || !db) return ctx.skip();
      const result = await runCli(['run', '--once'], env);
      expect(result.stderr).not.toContain('Error');
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/found\s+30/);

      const byStudent = new Map((await rows(db.knex)).map((r) => [r.STUDENT_ID, r]));
      let stored = 0;
      for (const photo of sim.photos()) {
        const student = studentNumberFor(photo.person);
        if (student) {
          const row = byStudent.get(student);
          expect(row?.PHOTO, `photo ${photo.id} for ${student}`).toBeDefined();
          expect(Buffer.from(row!.PHOTO!).equals(photo.bytes), `bytes of photo ${photo.id}`).toBe(true);
          expect(Number(row!.CLOUDCARD_PHOTO_ID)).toBe(photo.id);
          expect(row!.PHOTO_TYPE).toBe(photo.contentType);
          expect(photo.status).toBe('DOWNLOADED');
          expect(photo.statusHistory.filter((h) => h.status === 'DOWNLOADED')).toHaveLength(1);
          stored++;
        } else {
          expect(photo.status, `unmatched photo ${photo.id}`).toBe('ON_HOLD');
          const reason = photo.statusHistory.at(-1)?.reason ?? '';
          expect(reason).toMatch(photo.person.identifier === null ? /has no person\.identifier/ : /no row in .*students/);
          expect(reason).toContain('Check the student ID.');
        }
      }
      expect(stored).toBeGreaterThan(20);
      // Students without a photo in CloudCard are untouched.
      expect([...byStudent.values()].filter((r) => r.PHOTO !== null)).toHaveLength(stored);

      const ledger = await db.knex(db.schema ? `${db.schema}.cloudcard_ledger` : 'cloudcard_ledger').select('photo_id', 'acknowledged_at', 'byte_length');
      expect(ledger).toHaveLength(stored);
      expect(ledger.every((l) => l.acknowledged_at !== null)).toBe(true);
      // The session token and the access token never reach the output.
      expect(result.stdout + result.stderr).not.toContain(sim.accessToken);
    });

    it('does nothing new on a second run', async (ctx) => {
      if (skip || !db) return ctx.skip();
      const before = sim.photos().map((p) => `${p.id}:${p.version}:${p.status}`);
      const result = await runCli(['run', '--once'], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/found\s+0/);
      expect(result.stdout).toMatch(/stored\s+0/);
      expect(sim.photos().map((p) => `${p.id}:${p.version}:${p.status}`)).toEqual(before);
    });

    it('stores a re-approved photo (new version, new image) over the old one', async (ctx) => {
      if (skip || !db) return ctx.skip();
      const target = sim.photos().find((p) => p.status === 'DOWNLOADED')!;
      sim.replaceImage(target.id);
      sim.setStatus(target.id, 'READY_FOR_DOWNLOAD');
      const result = await runCli(['run', '--once'], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/stored\s+1/);
      const row = (await rows(db.knex)).find((r) => r.STUDENT_ID === studentNumberFor(target.person))!;
      expect(Buffer.from(row.PHOTO!).equals(sim.photo(target.id)!.bytes)).toBe(true);
      expect(sim.photo(target.id)!.status).toBe('DOWNLOADED');
    });
  });
}
