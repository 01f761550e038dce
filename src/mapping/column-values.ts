/**
 * The extra target columns a mapping asks for (timestamps, photo id, custom fields, constants),
 * resolved per photo. Values are bound as parameters by the writer, so whatever a student typed into a
 * custom field reaches the database as data, never as SQL.
 */
import type { Photo } from '../cloudcard/types.js';
import type { ColumnValue, Mapping } from '../config/mapping.js';
import type { StudentKey } from '../target/types.js';

export interface ColumnContext {
  photo: Photo;
  studentKey: StudentKey;
  contentType: string;
  byteLength: number;
  sha256: string;
  now: Date;
}

function fromSource(source: Extract<ColumnValue, { from: string }>['from'], ctx: ColumnContext): unknown {
  const { photo } = ctx;
  const person = photo.person ?? undefined;
  switch (source) {
    case 'now':
      return ctx.now;
    case 'photo.id':
      return photo.id;
    case 'photo.version':
      return photo.version ?? 0;
    case 'photo.dateCreated':
      return photo.dateCreated ? new Date(normalizeDate(photo.dateCreated)) : null;
    case 'photo.publicKey':
      return photo.publicKey ?? null;
    case 'photo.contentType':
      return ctx.contentType;
    case 'photo.byteLength':
      return ctx.byteLength;
    case 'photo.sha256':
      return ctx.sha256;
    case 'person.id':
      return person?.id ?? null;
    case 'person.identifier':
      return person?.identifier ?? null;
    case 'person.email':
      return person?.email ?? null;
    case 'person.username':
      return person?.username ?? null;
    case 'person.cardholderGroup':
      return person?.cardholderGroup?.name ?? null;
    case 'person.organization':
      return person?.organization?.name ?? null;
    case 'studentKey':
      return ctx.studentKey;
  }
}

export function resolveColumns(columns: Mapping['target']['columns'], ctx: ColumnContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [column, spec] of Object.entries(columns)) {
    if ('from' in spec) out[column] = fromSource(spec.from, ctx);
    else if ('customField' in spec) out[column] = ctx.photo.person?.customFields?.[spec.customField] ?? null;
    else out[column] = spec.value;
  }
  return out;
}

/**
 * CloudCard sends dateCreated as "2022-09-01T16:43:47Z" or "2024-08-27T18:19:54+0000" (no colon in the
 * offset, which some parsers reject). Returns ISO-8601 UTC with milliseconds, so that string order is time
 * order; an absent or unreadable date sorts first (epoch), so any dated photo is considered newer.
 */
export function normalizeDate(value: string | undefined | null): string {
  if (!value) return new Date(0).toISOString();
  const fixed = value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const ms = Date.parse(fixed);
  return Number.isNaN(ms) ? new Date(0).toISOString() : new Date(ms).toISOString();
}
