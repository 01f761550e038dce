/**
 * Reads the target table's shape from the database's own catalog, for `cloudcard-sync check`: where the table
 * is, its columns (type, length, nullability, whether the database fills them itself) and its unique keys.
 * Read-only: nothing here creates or changes anything. One function per question, one `switch` per dialect,
 * so the five catalogs sit side by side and can be compared.
 */
import type { Knex } from 'knex';
import { dialectName, type DialectName } from './connection.js';
import { dialectFor } from './dialects/index.js';

export interface TableRef {
  /** The schema the table was found in (SQLite: the attached database, normally `main`). */
  schema: string;
  name: string;
}

export interface TableSearch {
  /** The table, when a name that the database would resolve exactly as the mapping writes it exists. */
  found?: TableRef;
  /** The schemas looked in, in resolution order. */
  searched: string[];
  /** A table with nearly the same name (other letter case, or another schema) that the mapping may have meant. */
  suggestion?: TableRef;
}

export interface ColumnInfo {
  name: string;
  /** Base type name, lower-case, without length: bytea, longblob, varbinary, blob, varchar, int4, number, ... */
  type: string;
  /** Character length for strings, byte length for binary types; -1 means unlimited (MAX); null when not applicable or not enforced. */
  length: number | null;
  /** Numeric scale where the catalog has one (0 for whole numbers). */
  scale: number | null;
  /** MySQL UNSIGNED. */
  unsigned: boolean;
  nullable: boolean;
  /** The database supplies a value on insert: a default, identity/auto-increment, computed or rowid. */
  filledByDatabase: boolean;
}

/** Whether quoted table/column names must match in letter case (knex quotes every identifier). */
export async function identifierCase(knex: Knex): Promise<{ tables: boolean; columns: boolean }> {
  switch (dialectName(knex)) {
    case 'postgres':
    case 'oracle':
      return { tables: true, columns: true };
    case 'sqlite':
      return { tables: false, columns: false };
    case 'mysql': {
      // Table names are file names unless lower_case_table_names is set; column names never care.
      const row = first(knex, await knex.raw('select @@lower_case_table_names as v'));
      return { tables: Number(row.v) === 0, columns: false };
    }
    case 'mssql': {
      // Follows the database's default collation, which is case-insensitive unless someone chose otherwise.
      const row = first(knex, await knex.raw("select case when 'a' = 'A' then 1 else 0 end as v"));
      return { tables: Number(row.v) === 0, columns: Number(row.v) === 0 };
    }
  }
}

/** The schemas an unqualified table name is looked up in, in order. */
async function searchPath(knex: Knex): Promise<string[]> {
  switch (dialectName(knex)) {
    case 'postgres':
      return rows(knex, await knex.raw('select unnest(current_schemas(false)) as s')).map((r) => String(r.s));
    case 'mysql':
      return [String(first(knex, await knex.raw('select database() as s')).s)];
    case 'mssql': {
      // An unqualified name resolves in the user's default schema first, then dbo.
      const s = String(first(knex, await knex.raw('select schema_name() as s')).s);
      return s === 'dbo' ? [s] : [s, 'dbo'];
    }
    case 'oracle':
      return [String(first(knex, await knex.raw("select sys_context('USERENV', 'CURRENT_SCHEMA') as s from dual")).s)];
    case 'sqlite':
      return ['main'];
  }
}

/** Tables and views whose name equals `name` ignoring case, in any schema the account can see. */
async function tablesNamedLike(knex: Knex, name: string, sqliteSchemas: string[]): Promise<TableRef[]> {
  const lower = name.toLowerCase();
  let result: Array<Record<string, unknown>>;
  switch (dialectName(knex)) {
    case 'postgres':
      result = rows(knex, await knex.raw(
        `select n.nspname as s, c.relname as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p', 'v', 'm', 'f') and lower(c.relname) = ?
           and n.nspname not in ('pg_catalog', 'information_schema')`, [lower]));
      break;
    case 'mysql':
      result = rows(knex, await knex.raw(
        `select table_schema as s, table_name as n from information_schema.tables where lower(table_name) = ?`, [lower]));
      break;
    case 'mssql':
      result = rows(knex, await knex.raw(
        `select s.name as s, o.name as n from sys.objects o join sys.schemas s on s.schema_id = o.schema_id
         where o.type in ('U', 'V') and lower(o.name) = ?`, [lower]));
      break;
    case 'oracle':
      result = rows(knex, await knex.raw(
        `select owner as s, object_name as n from all_objects where object_type in ('TABLE', 'VIEW') and lower(object_name) = ?`, [lower]));
      break;
    case 'sqlite':
      result = [];
      for (const s of sqliteSchemas) {
        const found = rows(knex, await knex.raw(`select name as n from ??.sqlite_master where type in ('table', 'view') and lower(name) = ?`, [s, lower]));
        result.push(...found.map((r) => ({ s, n: r.n })));
      }
      break;
  }
  return result.map((r) => ({ schema: String(r.s), name: String(r.n) }));
}

/**
 * Finds the mapping's table (`table` or `schema.table`) the way the database would resolve it, and when it is not
 * there, the nearest thing that is: the same name in other letter case (Oracle and PostgreSQL fold unquoted
 * names, and knex quotes) or in another schema.
 */
export async function findTable(knex: Knex, qualified: string): Promise<TableSearch> {
  const [schemaPart, namePart] = qualified.includes('.') ? qualified.split('.') : [undefined, qualified];
  const name = namePart as string;
  const searched = schemaPart ? [schemaPart] : await searchPath(knex);
  const caseSensitive = (await identifierCase(knex)).tables;
  const candidates = await tablesNamedLike(knex, name, searched);
  const inSearched = (exact: boolean) =>
    searched
      .map((s) => candidates.find((c) => sameName(c.schema, s, caseSensitive) && (exact ? c.name === name : c.name.toLowerCase() === name.toLowerCase())))
      .find((c) => c !== undefined);
  const exact = inSearched(true) ?? (caseSensitive ? undefined : inSearched(false));
  if (exact) return { found: exact, searched };
  const suggestion = inSearched(false) ?? candidates[0];
  return suggestion ? { searched, suggestion } : { searched };
}

const sameName = (a: string, b: string, caseSensitive: boolean) => (caseSensitive ? a === b : a.toLowerCase() === b.toLowerCase());

/** The table's columns in table order. */
export async function describeColumns(knex: Knex, table: TableRef): Promise<ColumnInfo[]> {
  switch (dialectName(knex)) {
    case 'postgres':
      return rows(knex, await knex.raw(
        // pg_attribute rather than information_schema: the latter hides columns the account has no privilege on.
        `select a.attname as name, t.typname as type, a.atttypmod as typmod, a.attnotnull as notnull,
                (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '') as filled
         from pg_attribute a join pg_type t on t.oid = a.atttypid
           join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = ? and c.relname = ? and a.attnum > 0 and not a.attisdropped order by a.attnum`,
        [table.schema, table.name])).map((r) => {
        const type = String(r.type);
        const typmod = Number(r.typmod);
        const isChar = ['varchar', 'bpchar'].includes(type);
        return column({
          name: String(r.name),
          type,
          // varchar(n) and numeric(p,s) keep n and (p,s) in atttypmod, offset by the 4-byte header length.
          length: isChar ? (typmod > 4 ? typmod - 4 : -1) : type === 'text' ? -1 : null,
          scale: type === 'numeric' && typmod > 4 ? (typmod - 4) & 0xffff : ['int2', 'int4', 'int8'].includes(type) ? 0 : null,
          nullable: !r.notnull,
          filledByDatabase: Boolean(r.filled),
        });
      });
    case 'mysql':
      return rows(knex, await knex.raw(
        `select column_name as name, data_type as type, column_type as ctype, character_maximum_length as len,
                numeric_scale as scale, is_nullable as nullable, column_default as def, extra as extra
         from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position`,
        [table.schema, table.name])).map((r) => {
        const type = String(r.type).toLowerCase();
        return column({
          name: String(r.name),
          type,
          // BLOB and TEXT types report their capacity here too; only declared lengths (varchar(n), varbinary(n)) count.
          length: r.len == null || !/^(var)?(char|binary)$/.test(type) ? null : Number(r.len),
          scale: r.scale == null ? null : Number(r.scale),
          unsigned: /unsigned/i.test(String(r.ctype)),
          nullable: r.nullable === 'YES',
          filledByDatabase: r.def != null || /auto_increment|generated/i.test(String(r.extra ?? '')),
        });
      });
    case 'mssql':
      return rows(knex, await knex.raw(
        `select c.name as name, type_name(c.system_type_id) as type, c.max_length as len, c.scale as scale,
                c.is_nullable as nullable, c.is_identity as ident, c.is_computed as computed, c.default_object_id as def
         from sys.columns c where c.object_id = object_id(quotename(?) + '.' + quotename(?)) order by c.column_id`,
        [table.schema, table.name])).map((r) => {
        const type = String(r.type).toLowerCase();
        const len = Number(r.len);
        return column({
          name: String(r.name),
          type,
          // max_length is in bytes (-1 for MAX); nchar/nvarchar hold two bytes per character.
          length: len === -1 ? -1 : ['nchar', 'nvarchar'].includes(type) ? len / 2 : len,
          scale: r.scale == null ? null : Number(r.scale),
          nullable: Boolean(r.nullable),
          filledByDatabase: Boolean(r.ident) || Boolean(r.computed) || Number(r.def) !== 0 || ['timestamp', 'rowversion'].includes(type),
        });
      });
    case 'oracle':
      return rows(knex, await knex.raw(
        `select column_name as name, data_type as type, data_length as len, char_length as clen, data_scale as scale,
                nullable as nullable, default_length as deflen, identity_column as ident, virtual_column as virt
         from all_tab_cols where owner = ? and table_name = ? and hidden_column = 'NO' order by column_id`,
        [table.schema, table.name])).map((r) => {
        const type = String(r.type).toLowerCase().replace(/\(.*$/, '');
        const isChar = /char/.test(type);
        return column({
          name: String(r.name),
          type,
          length: isChar ? Number(r.clen) : ['raw'].includes(type) ? Number(r.len) : null,
          scale: r.scale == null ? (type === 'integer' ? 0 : null) : Number(r.scale),
          nullable: r.nullable === 'Y',
          filledByDatabase: Number(r.deflen ?? 0) > 0 || r.ident === 'YES' || r.virt === 'YES',
        });
      });
    case 'sqlite': {
      const info = rows(knex, await knex.raw('pragma ??.table_xinfo(??)', [table.schema, table.name]));
      const pkCount = info.filter((r) => Number(r.pk) > 0).length;
      return info.map((r) => {
        const declared = String(r.type ?? '').toLowerCase();
        const type = declared.replace(/\s*\(.*$/, '').trim();
        return column({
          name: String(r.name),
          type,
          // SQLite stores any length whatever the declaration says.
          length: null,
          scale: /int/.test(type) ? 0 : null,
          nullable: !Number(r.notnull),
          // INTEGER PRIMARY KEY is the rowid: SQLite assigns it. Hidden 2/3 are generated columns.
          filledByDatabase: r.dflt_value != null || [2, 3].includes(Number(r.hidden)) || (Number(r.pk) > 0 && pkCount === 1 && type === 'integer'),
        });
      });
    }
  }
}

function column(c: Omit<ColumnInfo, 'unsigned'> & { unsigned?: boolean }): ColumnInfo {
  return { unsigned: false, ...c };
}

/** Column lists of the table's primary key, unique constraints and (unfiltered) unique indexes. */
export async function uniqueKeys(knex: Knex, table: TableRef): Promise<string[][]> {
  let result: Array<Record<string, unknown>>;
  switch (dialectName(knex)) {
    case 'postgres':
      result = rows(knex, await knex.raw(
        `select i.indexrelid::text as i, a.attname as c
         from pg_index i join pg_class t on t.oid = i.indrelid join pg_namespace n on n.oid = t.relnamespace
           cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
           join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum
         where n.nspname = ? and t.relname = ? and i.indisunique and i.indpred is null order by i.indexrelid, k.ord`,
        [table.schema, table.name]));
      break;
    case 'mysql':
      result = rows(knex, await knex.raw(
        `select index_name as i, column_name as c from information_schema.statistics
         where table_schema = ? and table_name = ? and non_unique = 0 order by index_name, seq_in_index`,
        [table.schema, table.name]));
      break;
    case 'mssql':
      result = rows(knex, await knex.raw(
        `select i.index_id as i, c.name as c from sys.indexes i
           join sys.index_columns ic on ic.object_id = i.object_id and ic.index_id = i.index_id
           join sys.columns c on c.object_id = ic.object_id and c.column_id = ic.column_id
         where i.object_id = object_id(quotename(?) + '.' + quotename(?)) and i.is_unique = 1 and i.has_filter = 0
           and ic.is_included_column = 0 order by i.index_id, ic.key_ordinal`,
        [table.schema, table.name]));
      break;
    case 'oracle':
      // Primary keys and unique constraints are enforced by unique indexes, so the indexes cover all three.
      result = rows(knex, await knex.raw(
        `select ic.index_name as i, ic.column_name as c from all_indexes ix
           join all_ind_columns ic on ic.index_owner = ix.owner and ic.index_name = ix.index_name
         where ix.table_owner = ? and ix.table_name = ? and ix.uniqueness = 'UNIQUE' order by ic.index_name, ic.column_position`,
        [table.schema, table.name]));
      break;
    case 'sqlite': {
      result = [];
      const info = rows(knex, await knex.raw('pragma ??.table_xinfo(??)', [table.schema, table.name]));
      // An INTEGER PRIMARY KEY has no index of its own (it is the rowid), so the primary key comes from table_info.
      for (const r of info.filter((x) => Number(x.pk) > 0).sort((a, b) => Number(a.pk) - Number(b.pk))) result.push({ i: '(pk)', c: r.name });
      for (const idx of rows(knex, await knex.raw('pragma ??.index_list(??)', [table.schema, table.name]))) {
        if (!Number(idx.unique) || Number(idx.partial) || idx.origin === 'pk') continue;
        for (const c of rows(knex, await knex.raw('pragma ??.index_info(??)', [table.schema, String(idx.name)]))) result.push({ i: idx.name, c: c.name });
      }
      break;
    }
  }
  const byIndex = new Map<string, string[]>();
  for (const r of result) {
    const cols = byIndex.get(String(r.i)) ?? [];
    cols.push(String(r.c));
    byIndex.set(String(r.i), cols);
  }
  return [...byIndex.values()];
}

/** MySQL/MariaDB: the largest packet (and so the largest single statement, image included) the server accepts. */
export async function maxAllowedPacket(knex: Knex): Promise<number | undefined> {
  if (dialectName(knex) !== 'mysql') return undefined;
  return Number(first(knex, await knex.raw('select @@max_allowed_packet as v')).v);
}

/** A one-line database product and version, for the "connected to" line. */
export async function serverVersion(knex: Knex): Promise<string> {
  const queries: Record<DialectName, string> = {
    postgres: "select 'PostgreSQL ' || current_setting('server_version') as v",
    mysql: "select concat(if(version() like '%MariaDB%', 'MariaDB ', 'MySQL '), version()) as v",
    mssql: "select 'SQL Server ' + cast(serverproperty('ProductVersion') as varchar(64)) as v",
    oracle: "select banner as v from v$version where rownum = 1",
    sqlite: "select 'SQLite ' || sqlite_version() as v",
  };
  try {
    return String(first(knex, await knex.raw(queries[dialectName(knex)])).v);
  } catch {
    return dialectName(knex);
  }
}

function rows(knex: Knex, result: unknown): Array<Record<string, unknown>> {
  // Oracle returns unquoted aliases upper-case; every alias above is lower-case on purpose.
  return dialectFor(knex).rowsOf(result).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v])));
}

function first(knex: Knex, result: unknown): Record<string, unknown> {
  return rows(knex, result)[0] ?? {};
}
