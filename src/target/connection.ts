/**
 * Turns the one setting DATABASE_URL into a knex connection. The URL scheme picks the database driver, so an
 * institution switches databases by changing one environment variable, never code.
 */
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { ConfigError } from '../errors.js';

export type DialectName = 'postgres' | 'mysql' | 'mssql' | 'oracle' | 'sqlite';

export interface ConnectionOptions {
  /**
   * Pool size. The run lock holds one connection for the whole run and each photo in flight holds one for its
   * transaction, so callers pass concurrency + 2 (see run-lock.ts).
   */
  poolMax?: number;
}

const ALLOWED =
  'postgres://, postgresql://, mysql://, mariadb://, mssql://, sqlserver://, oracle://, sqlite:<path>, sqlite::memory:, or a path ending in .sqlite/.db';

/** How long a SQLite writer waits for another process's write transaction before giving up (SQLITE_BUSY). */
const SQLITE_BUSY_TIMEOUT_MS = 15_000;

/** The URL with its password replaced, safe for messages and logs. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z0-9+]+:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

function isSqlitePath(url: string): boolean {
  return url.startsWith('sqlite:') || (!/^[a-z0-9+]+:\/\//i.test(url) && /\.(sqlite3?|db)$/i.test(url));
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new ConfigError(`DATABASE_URL is not a valid URL: ${maskUrl(url)}`);
  }
}

const decode = (s: string): string => decodeURIComponent(s);
const databaseOf = (u: URL): string | undefined => decode(u.pathname.replace(/^\//, '')) || undefined;
const portOf = (u: URL, fallback: number): number => (u.port ? Number(u.port) : fallback);

function sqliteFilename(url: string): string {
  const rest = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  if (rest === ':memory:') return ':memory:';
  // sqlite:///abs/path and sqlite://rel both occur in the wild; accept them as plain paths.
  const file = rest.replace(/^\/\/(?=\/)/, '').replace(/^\/\/(?!\/)/, '');
  if (!file) throw new ConfigError(`DATABASE_URL names no SQLite file: ${url} (use sqlite:./path/file.sqlite or sqlite::memory:)`);
  return path.resolve(file);
}

export function knexConfigFromUrl(url: string, opts: ConnectionOptions = {}): Knex.Config {
  const poolMax = opts.poolMax ?? 10;
  const pool = { min: 0, max: poolMax };

  if (isSqlitePath(url)) {
    const filename = sqliteFilename(url);
    return {
      client: 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      // SQLite has one writer at a time; one connection per process keeps our own transactions from fighting
      // each other, and busy_timeout makes other processes wait rather than fail.
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          try {
            if (filename !== ':memory:') conn.pragma('journal_mode = WAL');
            conn.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
            conn.pragma('foreign_keys = ON');
            done(null, conn);
          } catch (e) {
            done(e as Error, conn);
          }
        },
      },
    };
  }

  const scheme = /^([a-z0-9+]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'postgres':
    case 'postgresql':
      // pg parses its own URLs, including ?sslmode= and socket paths.
      return { client: 'pg', connection: url, pool };
    case 'mysql':
    case 'mariadb': {
      const u = parseUrl(url);
      return {
        client: 'mysql2',
        connection: {
          host: u.hostname,
          port: portOf(u, 3306),
          user: decode(u.username),
          password: decode(u.password),
          database: databaseOf(u),
          // BIGINT photo ids come back as numbers (they stay well inside 2^53) rather than losing precision.
          supportBigNumbers: true,
          charset: 'utf8mb4',
        },
        pool,
      };
    }
    case 'mssql':
    case 'sqlserver': {
      const u = parseUrl(url);
      const flag = (name: string, fallback: boolean): boolean => {
        const v = u.searchParams.get(name);
        return v === null ? fallback : /^(1|true|yes)$/i.test(v);
      };
      return {
        client: 'mssql',
        connection: {
          server: u.hostname,
          port: portOf(u, 1433),
          user: decode(u.username),
          password: decode(u.password),
          database: databaseOf(u) ?? 'master',
          options: {
            encrypt: flag('encrypt', true),
            trustServerCertificate: flag('trustServerCertificate', false),
          },
        },
        pool,
      };
    }
    case 'oracle': {
      const u = parseUrl(url);
      const service = databaseOf(u);
      if (!service) throw new ConfigError(`DATABASE_URL for Oracle must name the service: oracle://user:pass@host:1521/SERVICE (got ${maskUrl(url)})`);
      // node-oracledb runs in thin mode unless initOracleClient() is called; we never call it, so no Instant Client is needed.
      return {
        client: 'oracledb',
        connection: {
          user: decode(u.username),
          password: decode(u.password),
          connectString: `${u.hostname}:${portOf(u, 1521)}/${service}`,
        },
        pool,
      };
    }
    default:
      throw new ConfigError(`DATABASE_URL has an unsupported scheme (${maskUrl(url)}). Allowed: ${ALLOWED}`);
  }
}

export function openDatabase(url: string, opts: ConnectionOptions = {}): Knex {
  return knexFactory(knexConfigFromUrl(url, opts));
}

export function dialectName(knex: Knex): DialectName {
  const client = String((knex.client as { config?: { client?: unknown } }).config?.client ?? knex.client.dialect);
  switch (client) {
    case 'pg':
    case 'postgres':
    case 'postgresql':
      return 'postgres';
    case 'mysql':
    case 'mysql2':
      return 'mysql';
    case 'mssql':
      return 'mssql';
    case 'oracledb':
    case 'oracle':
      return 'oracle';
    case 'sqlite3':
    case 'better-sqlite3':
      return 'sqlite';
    default:
      throw new ConfigError(`Unsupported knex client "${client}"`);
  }
}
