/**
 * One run at a time per database, across machines. Where the database offers a session lock (PostgreSQL,
 * MySQL/MariaDB, SQL Server) or a row lock held by an open transaction (Oracle), the lock lives on a dedicated
 * connection held for the whole run, so it goes away by itself when the process dies and its connection
 * drops. That connection comes from the knex pool: pool max must be at least concurrency + 2.
 * SQLite has no sessions across processes, so there the lock is a row with a heartbeat.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Knex } from 'knex';
import { dialectName } from './connection.js';
import { JOB_TABLES, checkJobSchema, jobTable } from './job-tables.js';

export interface RunLock {
  release(): Promise<void>;
}

export interface RunLockOptions {
  jobSchema?: string;
  /** SQLite: how often the holder refreshes its heartbeat. */
  heartbeatMs?: number;
  /** SQLite: a heartbeat older than this means the holder is gone. */
  staleMs?: number;
}

type Conn = unknown;

/** Runs one statement on a connection we hold outside the pool's normal checkout. */
function on(knex: Knex, conn: Conn, sql: string, bindings: Knex.RawBinding[] = []): Promise<unknown> {
  return knex.raw(sql, bindings).connection(conn as never) as unknown as Promise<unknown>;
}

async function withDedicatedConnection(knex: Knex, take: (conn: Conn) => Promise<(() => Promise<void>) | null>): Promise<RunLock | null> {
  const conn = (await knex.client.acquireConnection()) as Conn;
  let unlock: (() => Promise<void>) | null;
  try {
    unlock = await take(conn);
  } catch (err) {
    await knex.client.releaseConnection(conn);
    throw err;
  }
  if (!unlock) {
    await knex.client.releaseConnection(conn);
    return null;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await unlock();
      } finally {
        await knex.client.releaseConnection(conn);
      }
    },
  };
}

/** PostgreSQL advisory-lock keys are 64-bit integers; a stable one (FNV-1a) from the lock name. */
export function advisoryKey(name: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(`cloudcard-sync:${name}`, 'utf8')) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return BigInt.asIntN(64, h).toString();
}

const firstValue = (rows: unknown): unknown => {
  const row = (Array.isArray(rows) ? rows[0] : undefined) as Record<string, unknown> | undefined;
  return row ? Object.values(row)[0] : undefined;
};

/** Like acquireRunLock, but waits (polling) up to waitMs for the holder to finish; null if it never did. */
export async function waitForRunLock(knex: Knex, name: string, jobSchema: string | undefined, waitMs: number): Promise<RunLock | null> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lock = await acquireRunLock(knex, name, jobSchema ? { jobSchema } : {});
    if (lock || Date.now() > deadline) return lock;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Server-wide locks (advisory locks, GET_LOCK, applocks) are scoped to the schema that holds the job's
 * tables: two jobs with their own ledgers in one database do not exclude each other, two on one ledger do.
 */
async function scopedName(knex: Knex, conn: unknown, name: string, schema: string | undefined, currentSchemaSql: string): Promise<string> {
  if (schema) return `${schema}:${name}`;
  const res = await on(knex, conn, currentSchemaSql, []);
  const rows = Array.isArray(res) ? (Array.isArray(res[0]) ? res[0] : res) : (res as { rows: unknown[] }).rows;
  return `${String(firstValue(rows) ?? '')}:${name}`;
}

export async function acquireRunLock(knex: Knex, name: string, opts: RunLockOptions = {}): Promise<RunLock | null> {
  const schema = checkJobSchema(String(knex.client.config.client), opts.jobSchema);
  switch (dialectName(knex)) {
    case 'postgres':
      return withDedicatedConnection(knex, async (conn) => {
        const key = advisoryKey(await scopedName(knex, conn, name, schema, 'select current_schema() as s'));
        const res = (await on(knex, conn, 'select pg_try_advisory_lock(?::bigint) as locked', [key])) as { rows: unknown[] };
        if (firstValue(res.rows) !== true) return null;
        return async () => void (await on(knex, conn, 'select pg_advisory_unlock(?::bigint)', [key]));
      });
    case 'mysql':
      return withDedicatedConnection(knex, async (conn) => {
        // MySQL lock names are limited to 64 characters.
        const lockName = `cloudcard-sync:${await scopedName(knex, conn, name, schema, 'select database() as s')}`.slice(0, 64);
        const [rows] = (await on(knex, conn, 'select get_lock(?, 0) as locked', [lockName])) as [unknown[]];
        if (Number(firstValue(rows)) !== 1) return null;
        return async () => void (await on(knex, conn, 'select release_lock(?)', [lockName]));
      });
    case 'mssql':
      return withDedicatedConnection(knex, async (conn) => {
        const resource = `cloudcard-sync:${await scopedName(knex, conn, name, schema, 'select schema_name() as s')}`;
        const rows = await on(
          knex,
          conn,
          "declare @r int; exec @r = sp_getapplock @Resource = ?, @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; select @r as result",
          [resource],
        );
        // 0 granted, 1 granted after waiting; negative: not granted.
        if (Number(firstValue(rows)) < 0) return null;
        return async () => void (await on(knex, conn, "exec sp_releaseapplock @Resource = ?, @LockOwner = 'Session'", [resource]));
      });
    case 'oracle':
      return oracleRowLock(knex, name, jobTable(JOB_TABLES.lock, schema));
    case 'sqlite':
      return sqliteHeartbeatLock(knex, name, jobTable(JOB_TABLES.lock, schema), opts);
  }
}

/**
 * Oracle: DBMS_LOCK needs a grant campuses rarely give, so we lock our own row with FOR UPDATE NOWAIT in a
 * transaction held open on a dedicated connection. The transaction ends (and the lock goes) if the session dies.
 */
async function oracleRowLock(knex: Knex, name: string, table: string): Promise<RunLock | null> {
  // Make sure the row exists; a concurrent insert of the same name is fine (ORA-00001).
  await knex
    .raw('merge into ?? t using (select ? as ?? from dual) s on (t.?? = s.??) when not matched then insert (??) values (s.??)', [
      table, name, 'name', 'name', 'name', 'name', 'name',
    ])
    .catch((err: { errorNum?: number }) => {
      if (err.errorNum !== 1) throw err;
    });
  const trx = await knex.transaction();
  try {
    await trx.raw('select ?? from ?? where ?? = ? for update nowait', ['name', table, 'name', name]);
  } catch (err) {
    await trx.rollback().catch(() => undefined);
    // ORA-00054: resource busy and acquire with NOWAIT specified.
    if ((err as { errorNum?: number }).errorNum === 54) return null;
    throw err;
  }
  await trx(table).where({ name }).update({ holder: holderId(), acquired_at: new Date() });
  return {
    async release() {
      if (!trx.isCompleted()) await trx.rollback().catch(() => undefined);
    },
  };
}

/** "host:pid:token": host and pid let a later run see that the holder died; the token tells two holders in one process apart. */
function holderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the current holder is gone: a stale heartbeat, or a dead process on this very host. */
function holderGone(row: { holder?: unknown; heartbeat_at?: unknown }, staleMs: number): boolean {
  if (row.holder == null) return true;
  const beat = row.heartbeat_at instanceof Date ? row.heartbeat_at.getTime() : Number(row.heartbeat_at);
  if (!Number.isFinite(beat) || Date.now() - beat > staleMs) return true;
  const [host, pid] = String(row.holder).split(':');
  return host === hostname() && pid !== undefined && !pidAlive(Number(pid));
}

async function sqliteHeartbeatLock(knex: Knex, name: string, table: string, opts: RunLockOptions): Promise<RunLock | null> {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const staleMs = opts.staleMs ?? 60_000;
  const me = holderId();
  const taken = await knex.transaction(async (trx) => {
    // Write first, so the transaction holds SQLite's write lock before it reads (see dialects/sqlite.ts).
    await trx.raw('insert into ?? (??) values (?) on conflict (??) do nothing', [table, 'name', name, 'name']);
    const row = await trx(table).where({ name }).first();
    if (row && row.holder !== me && !holderGone(row, staleMs)) return false;
    const now = new Date();
    await trx(table).where({ name }).update({ holder: me, acquired_at: now, heartbeat_at: now });
    return true;
  });
  if (!taken) return null;

  const timer = setInterval(() => {
    knex(table)
      .where({ name, holder: me })
      .update({ heartbeat_at: new Date() })
      .catch(() => undefined); // a missed beat is retried next time; 60 s of them lose the lock
  }, heartbeatMs);
  timer.unref();

  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await knex(table).where({ name, holder: me }).update({ holder: null, heartbeat_at: null });
    },
  };
}
