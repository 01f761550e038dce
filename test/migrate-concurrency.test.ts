/**
 * Two instances started at the same moment against a fresh database (two daemons deployed together, a
 * cron run meeting a manual one) both migrate the job's tables; neither may fail for it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialectName, openDatabase } from '../src/target/connection.js';
import { migrateLatest, migrationStatus } from '../src/target/migrate.js';
import { DIALECTS, type AcquiredDatabase } from './support/databases.js';

for (const dialect of DIALECTS.filter((d) => ['postgres', 'mysql', 'sqlite'].includes(d.name))) {
  describe(`concurrent first-time migrations on ${dialect.name}`, () => {
    let db: AcquiredDatabase | undefined;
    let skip: string | undefined;
    beforeAll(async () => {
      const got = await dialect.acquire();
      if ('skip' in got) skip = got.skip;
      else db = got;
    });
    afterAll(async () => {
      if (db && db.schema && dialectName(db.knex) === 'postgres') await db.knex.raw('drop schema if exists ?? cascade', [`${db.schema}_m`]);
      if (db && db.schema && dialectName(db.knex) === 'mysql') await db.knex.raw('drop database if exists ??', [`${db.schema}_m`]);
      await db?.close();
    });

    it('lets four instances migrate a fresh database at once; all succeed, the tables exist once', async (ctx) => {
      if (skip || !db) return ctx.skip();
      // A job schema nobody has created yet (SQLite has no schemas: its fresh file is the fresh database).
      const schema = db.schema ? `${db.schema}_m` : undefined;
      const instances = Array.from({ length: 4 }, () => openDatabase(db!.url, { poolMax: 3 }));
      try {
        const results = await Promise.allSettled(instances.map((k) => migrateLatest(k, schema)));
        expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
        const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
        expect(applied).toHaveLength(1); // the one migration ran once, by one of them
        expect((await migrationStatus(instances[0]!, schema)).pending).toEqual([]);
      } finally {
        await Promise.all(instances.map((k) => k.destroy()));
      }
    });
  });
}
