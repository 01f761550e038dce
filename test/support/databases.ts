/**
 * The databases the per-dialect suites run against. Each comes, in this order, from a URL in the environment
 * (TEST_PG_URL, TEST_MYSQL_URL, TEST_MSSQL_URL, TEST_ORACLE_URL), from testcontainers when a container runtime
 * answers, or not at all: then `acquire()` says why and how to enable it. SQLite always runs, in a temp file.
 *
 * Test files run in parallel on the same servers, so every acquisition gets its own namespace (`schema`): a
 * PostgreSQL / SQL Server schema, a MySQL database, an Oracle user. close() drops it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { dialectName, openDatabase, type DialectName } from '../../src/target/connection.js';

export interface AcquiredDatabase {
  url: string;
  knex: Knex;
  /** This acquisition's own schema (undefined for SQLite, which has none). */
  schema: string | undefined;
  close(): Promise<void>;
}

export interface DialectUnderTest {
  name: DialectName;
  acquire(): Promise<AcquiredDatabase | { skip: string }>;
}

const uniqueName = (): string => `cc_test_${randomBytes(4).toString('hex')}`;

let runtimeProbe: Promise<boolean> | undefined;
/** Asks testcontainers once whether Docker (or Podman...) answers; without one it fails fast. */
function containerRuntimeAvailable(): Promise<boolean> {
  runtimeProbe ??= (async () => {
    try {
      const { getContainerRuntimeClient } = await import('testcontainers');
      await getContainerRuntimeClient();
      return true;
    } catch {
      return false;
    }
  })();
  return runtimeProbe;
}

interface Server {
  url: string;
  stop?: () => Promise<void>;
}

/** Containers are started once per test file and shared by its tests. */
const started = new Map<string, Promise<Server>>();

async function server(envVar: string, label: string, start: () => Promise<Server>): Promise<Server | { skip: string }> {
  const fromEnv = process.env[envVar];
  if (fromEnv) return { url: fromEnv };
  if (!(await containerRuntimeAvailable())) {
    // Printed here, once per suite that asks, so every skipped suite says why and how to enable it.
    const skip = `${label} integration tests skipped: set ${envVar}=... or run Docker (testcontainers)`;
    console.log(skip);
    return { skip };
  }
  let s = started.get(envVar);
  if (!s) {
    s = start();
    started.set(envVar, s);
  }
  return s;
}

/** Creates the namespace on an admin connection, then opens the connection the test uses. */
async function withNamespace(
  url: string,
  create: (admin: Knex, name: string) => Promise<void>,
  drop: (admin: Knex, name: string) => Promise<void>,
  stop?: () => Promise<void>,
): Promise<AcquiredDatabase> {
  const name = uniqueName();
  const knex = openDatabase(url, { poolMax: 12 });
  await create(knex, name);
  return {
    url,
    knex,
    schema: dialectName(knex) === 'oracle' ? name.toUpperCase() : name,
    async close() {
      try {
        await drop(knex, name);
      } finally {
        await knex.destroy();
        await stop?.();
      }
    },
  };
}

export const DIALECTS: DialectUnderTest[] = [
  {
    name: 'postgres',
    async acquire() {
      const s = await server('TEST_PG_URL', 'PostgreSQL', async () => {
        const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
        const c = await new PostgreSqlContainer('postgres:16-alpine').start();
        return { url: c.getConnectionUri(), stop: async () => void (await c.stop()) };
      });
      if ('skip' in s) return s;
      return withNamespace(
        s.url,
        async (k, n) => void (await k.raw('create schema ??', [n])),
        async (k, n) => void (await k.raw('drop schema if exists ?? cascade', [n])),
      );
    },
  },
  {
    name: 'mysql',
    async acquire() {
      const s = await server('TEST_MYSQL_URL', 'MySQL/MariaDB', async () => {
        const { MariaDbContainer } = await import('@testcontainers/mariadb');
        const c = await new MariaDbContainer('mariadb:11').withUsername('root').withUserPassword('test').start();
        return { url: `mysql://root:test@${c.getHost()}:${c.getPort()}/${c.getDatabase()}`, stop: async () => void (await c.stop()) };
      });
      if ('skip' in s) return s;
      return withNamespace(
        s.url,
        async (k, n) => void (await k.raw('create database ?? character set utf8mb4', [n])),
        async (k, n) => void (await k.raw('drop database if exists ??', [n])),
      );
    },
  },
  {
    name: 'mssql',
    async acquire() {
      const s = await server('TEST_MSSQL_URL', 'SQL Server', async () => {
        const { MSSQLServerContainer } = await import('@testcontainers/mssqlserver');
        const c = await new MSSQLServerContainer('mcr.microsoft.com/mssql/server:2022-latest').acceptLicense().start();
        const pw = encodeURIComponent(c.getPassword());
        return {
          url: `mssql://${c.getUsername()}:${pw}@${c.getHost()}:${c.getPort()}/${c.getDatabase()}?encrypt=false&trustServerCertificate=true`,
          stop: async () => void (await c.stop()),
        };
      });
      if ('skip' in s) return s;
      return withNamespace(
        s.url,
        async (k, n) => void (await k.raw("exec('create schema ' + ?)", [n])),
        async (k, n) => {
          // A schema can only be dropped empty.
          const tables = (await k('INFORMATION_SCHEMA.TABLES').where('TABLE_SCHEMA', n).select('TABLE_NAME')) as Array<{ TABLE_NAME: string }>;
          for (const t of tables) await k.schema.withSchema(n).dropTableIfExists(t.TABLE_NAME);
          await k.raw("exec('drop schema ' + ?)", [n]);
        },
      );
    },
  },
  {
    name: 'oracle',
    async acquire() {
      const s = await server('TEST_ORACLE_URL', 'Oracle', async () => {
        const { GenericContainer, Wait } = await import('testcontainers');
        const c = await new GenericContainer('gvenzl/oracle-free:slim-faststart')
          .withEnvironment({ ORACLE_PASSWORD: 'test' })
          .withExposedPorts(1521)
          .withWaitStrategy(Wait.forLogMessage('DATABASE IS READY TO USE!'))
          .withStartupTimeout(300_000)
          .start();
        return { url: `oracle://system:test@${c.getHost()}:${c.getMappedPort(1521)}/FREEPDB1`, stop: async () => void (await c.stop()) };
      });
      if ('skip' in s) return s;
      // An Oracle schema is a user; the URL's account (e.g. SYSTEM) must be allowed to create users.
      return withNamespace(
        s.url,
        async (k, n) => {
          const user = n.toUpperCase();
          await k.raw(`create user ?? identified by "Cc${randomBytes(6).toString('hex')}" quota unlimited on users`, [user]);
        },
        async (k, n) => void (await k.raw('drop user ?? cascade', [n.toUpperCase()])),
      );
    },
  },
  {
    name: 'sqlite',
    async acquire() {
      const dir = mkdtempSync(path.join(tmpdir(), 'cc-sqlite-'));
      const url = `sqlite:${path.join(dir, 'test.sqlite')}`;
      const knex = openDatabase(url);
      return {
        url,
        knex,
        schema: undefined,
        async close() {
          await knex.destroy();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];
