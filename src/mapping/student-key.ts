/**
 * Person → student key, step one: pick the configured field and clean it up the way the institution's
 * database spells its keys. Step two (the optional lookup query in the target database) lives in the
 * writer, because it needs a connection.
 */
import type { Photo } from '../cloudcard/types.js';
import type { Mapping } from '../config/mapping.js';

export type KeyExtraction =
  | { ok: true; key: string; raw: string }
  | { ok: false; code: 'no-identifier' | 'key-pattern'; reason: string };

type KeyRules = Mapping['studentKey'];

/** Applies the mapping's clean-ups in a fixed, documented order: trim, strip prefix, case, zero-pad. */
export function cleanKey(raw: string, clean: KeyRules['clean']): string {
  let key = clean.trim ? raw.trim() : raw;
  if (clean.stripPrefix && key.startsWith(clean.stripPrefix)) key = key.slice(clean.stripPrefix.length);
  if (clean.case === 'upper') key = key.toUpperCase();
  else if (clean.case === 'lower') key = key.toLowerCase();
  // Only pad what is shorter: a longer value is a different kind of key and padding cannot fix it.
  if (clean.zeroPad && key.length < clean.zeroPad) key = key.padStart(clean.zeroPad, '0');
  return key;
}

function describeSource(rules: KeyRules): string {
  return rules.from === 'customField' ? `custom field "${rules.customField}"` : `person.${rules.from}`;
}

function rawValue(photo: Photo, rules: KeyRules): unknown {
  const person = photo.person ?? undefined;
  if (!person) return undefined;
  if (rules.from === 'customField') return person.customFields?.[rules.customField ?? ''];
  return person[rules.from];
}

export function extractStudentKey(photo: Photo, rules: KeyRules): KeyExtraction {
  const value = rawValue(photo, rules);
  const raw = typeof value === 'number' ? String(value) : value;
  if (typeof raw !== 'string' || raw.trim() === '') {
    return { ok: false, code: 'no-identifier', reason: `Photo ${photo.id} has no ${describeSource(rules)} to match a student by.` };
  }
  const key = cleanKey(raw, rules.clean);
  if (rules.clean.pattern !== undefined && !new RegExp(rules.clean.pattern).test(key)) {
    return {
      ok: false,
      code: 'key-pattern',
      reason: `Photo ${photo.id}: ${describeSource(rules)} "${raw}" (cleaned to "${key}") does not look like a student key (pattern ${rules.clean.pattern}).`,
    };
  }
  return { ok: true, key, raw };
}
