/**
 * The mapping file: how one institution's CloudCard people become rows in its own database.
 * One zod schema is the single source of truth for the format; README.md documents it with an example.
 * Every error names the file, the key path and, where there is a fixed set, the allowed values.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PHOTO_STATUSES } from '../cloudcard/types.js';
import { ConfigError } from '../errors.js';

/**
 * SQL identifiers from the mapping are passed to the database as identifiers (quoted by knex), never
 * spliced into SQL text. We still refuse anything that is not a plain name, so a typo or an injection
 * attempt is caught at load time with a clear message rather than as an odd database error.
 */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$#]{0,127}$/;
const identifier = z
  .string()
  .regex(IDENTIFIER, 'must be a plain SQL name: letters, digits, _ $ #, starting with a letter or _');
/** A table name, optionally schema-qualified: `photos` or `campus.photos`. */
const tableName = z
  .string()
  .refine((s) => {
    const parts = s.split('.');
    return parts.length <= 2 && parts.every((p) => IDENTIFIER.test(p));
  }, 'must be a plain table name, optionally schema-qualified (schema.table), each part letters, digits, _ $ #');

/** Where a value for an extra column comes from. */
export const VALUE_SOURCES = [
  'now',
  'photo.id',
  'photo.version',
  'photo.dateCreated',
  'photo.publicKey',
  'photo.contentType',
  'photo.byteLength',
  'photo.sha256',
  'person.id',
  'person.identifier',
  'person.email',
  'person.username',
  'person.cardholderGroup',
  'person.organization',
  'studentKey',
] as const;
export type ValueSource = (typeof VALUE_SOURCES)[number];

const columnValue = z.union([
  z.strictObject({ from: z.enum(VALUE_SOURCES) }),
  z.strictObject({ customField: z.string().min(1) }),
  z.strictObject({ value: z.union([z.string(), z.number(), z.boolean(), z.null()]) }),
]);
export type ColumnValue = z.infer<typeof columnValue>;

export const KEY_SOURCES = ['identifier', 'email', 'username', 'customField'] as const;

const studentKey = z
  .strictObject({
    from: z.enum(KEY_SOURCES).default('identifier'),
    customField: z.string().min(1).optional(),
    clean: z
      .strictObject({
        trim: z.boolean().default(true),
        case: z.enum(['none', 'upper', 'lower']).default('none'),
        stripPrefix: z.string().optional(),
        zeroPad: z.number().int().min(1).max(64).optional(),
        /** A key that does not match this pattern (after clean-up) is treated as unmatched. */
        pattern: z.string().optional(),
      })
      .prefault({}),
    /**
     * An optional query in the target database that turns the cleaned CloudCard value into the real key,
     * e.g. a Banner SPRIDEN_ID into a PIDM. It must bind `:key` and return one column; no row means unmatched.
     */
    lookup: z.strictObject({ sql: z.string().min(1) }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.from === 'customField' && !v.customField) {
      ctx.addIssue({ code: 'custom', path: ['customField'], message: 'is required when from is customField' });
    }
    if (v.lookup && !/:key\b/.test(v.lookup.sql)) {
      ctx.addIssue({ code: 'custom', path: ['lookup', 'sql'], message: 'must bind the cleaned key as :key' });
    }
    if (v.clean.pattern !== undefined) {
      try {
        new RegExp(v.clean.pattern);
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['clean', 'pattern'], message: `is not a valid regular expression (${(e as Error).message})` });
      }
    }
  });

export const WRITE_MODES = ['upsert', 'update', 'insert'] as const;
export type WriteMode = (typeof WRITE_MODES)[number];

const target = z.strictObject({
  table: tableName,
  keyColumn: identifier,
  blobColumn: identifier,
  /**
   * upsert: insert or replace; update: only students whose row already exists get a photo (others are
   * unmatched); insert: add a row per photo, never replace (for history tables).
   */
  mode: z.enum(WRITE_MODES).default('upsert'),
  /**
   * Whether keyColumn has a unique constraint or primary key. When it does, the dialect's native upsert
   * (ON CONFLICT / ON DUPLICATE KEY / MERGE) is used; when not, an update-then-insert under the job's own
   * per-student lock. `cloudcard-sync check` tells which one your table needs.
   */
  keyIsUnique: z.boolean().default(true),
  /** The key column's type as far as binding goes: a number column gets a number. */
  keyType: z.enum(['string', 'integer']).default('string'),
  columns: z.record(identifier, columnValue).default({}),
});

const unmatched = z
  .strictObject({
    /** leave: stays READY for the next run; hold: ON_HOLD with reason; fail: FAILED with reason. */
    action: z.enum(['leave', 'hold', 'fail']).default('leave'),
    reason: z.string().min(1).max(500).default('No matching student record was found for this photo.'),
  })
  .prefault({});

export const mappingSchema = z.strictObject({
  name: z.string().optional(),
  /** Which photo statuses to pick up; one list call per status. */
  statuses: z.array(z.enum(PHOTO_STATUSES)).min(1).default(['READY_FOR_DOWNLOAD']),
  /** What to mark a photo once it is stored. */
  markAs: z.enum(PHOTO_STATUSES).default('DOWNLOADED'),
  studentKey: studentKey.prefault({}),
  target,
  unmatched,
  /**
   * What to do with a photo whose bytes are not a usable image (not JPEG/PNG, truncated, over maxBytes):
   * it will not fix itself, so by default it is put ON_HOLD for the card office with the specific reason.
   */
  badImage: z
    .strictObject({ action: z.enum(['leave', 'hold', 'fail']).default('hold') })
    .prefault({}),
  images: z
    .strictObject({
      maxBytes: z.number().int().min(1024).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
      types: z.array(z.enum(['jpeg', 'png'])).min(1).default(['jpeg', 'png']),
    })
    .prefault({}),
});

export type Mapping = z.infer<typeof mappingSchema>;
export type MappingInput = z.input<typeof mappingSchema>;
export type TargetMapping = Mapping['target'];

/** Formats zod issues as "file: key.path: message (allowed: a, b)" lines. */
export function describeIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    let msg = issue.message;
    if (issue.code === 'invalid_value' && 'values' in issue) {
      msg = `must be one of: ${(issue.values as unknown[]).join(', ')}`;
    } else if (issue.code === 'unrecognized_keys') {
      msg = `unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    } else if (issue.code === 'invalid_key') {
      // A bad column name under target.columns: say what is wrong with it, not just "Invalid key in record".
      msg = `column name ${issue.issues.map((i) => i.message).join('; ')}`;
    }
    return `  ${source}: ${where}: ${msg}`;
  });
  return `Invalid mapping:\n${lines.join('\n')}`;
}

/** Validates an already-parsed mapping object; `source` names it in errors. */
export function parseMapping(raw: unknown, source = 'mapping'): Mapping {
  const result = mappingSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(source, result.error));
  return result.data;
}

/** Reads a .yaml/.yml/.json mapping file. */
export function loadMapping(file: string): Mapping {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`Cannot read mapping file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`Mapping file ${file} is not valid ${path.extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message}`);
  }
  return parseMapping(raw, file);
}
