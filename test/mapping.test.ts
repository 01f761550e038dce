/** The mapping file: validation messages that name file, key and allowed values; clean-ups; column values; settings. */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Photo } from '../src/cloudcard/types.js';
import { loadMapping, parseMapping } from '../src/config/mapping.js';
import { loadSettings } from '../src/config/settings.js';
import { ConfigError } from '../src/errors.js';
import { normalizeDate, resolveColumns } from '../src/mapping/column-values.js';
import { cleanKey, extractStudentKey } from '../src/mapping/student-key.js';
import { ROOT } from './support/cli.js';

const dir = mkdtempSync(path.join(tmpdir(), 'cc-mapping-'));
function file(name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}
const minimal = { target: { table: 'photos', keyColumn: 'id', blobColumn: 'img' } };
const photo = (person: Photo['person'], extra: Partial<Photo> = {}): Photo => ({ id: 42, version: 3, status: 'READY_FOR_DOWNLOAD', person, ...extra });

describe('mapping validation', () => {
  it('accepts every example mapping shipped in mappings/', () => {
    const files = readdirSync(path.join(ROOT, 'mappings')).filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) expect(() => loadMapping(path.join(ROOT, 'mappings', f)), f).not.toThrow();
  });

  it('fills in defaults', () => {
    const m = parseMapping(minimal);
    expect(m.statuses).toEqual(['READY_FOR_DOWNLOAD']);
    expect(m.markAs).toBe('DOWNLOADED');
    expect(m.target.mode).toBe('upsert');
    expect(m.unmatched.action).toBe('leave');
    expect(m.badImage.action).toBe('hold');
    expect(m.studentKey.from).toBe('identifier');
    expect(m.studentKey.clean.trim).toBe(true);
  });

  it('names the file, the key and the allowed values for a wrong enum', () => {
    const f = file('bad-enum.yaml', 'target: { table: photos, keyColumn: id, blobColumn: img, mode: merge }\n');
    expect(() => loadMapping(f)).toThrow(ConfigError);
    expect(() => loadMapping(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: target\\.mode: must be one of: upsert, update, insert`));
  });

  it('names unknown keys (typos) instead of ignoring them', () => {
    expect(() => parseMapping({ ...minimal, unmatchd: { action: 'hold' } }, 'm.yaml')).toThrow(/m\.yaml: \(top level\): unknown key\(s\) 'unmatchd'/);
  });

  it('refuses identifiers that are not plain SQL names', () => {
    expect(() => parseMapping({ target: { ...minimal.target, table: 'photos; DROP TABLE students' } })).toThrow(/target\.table: must be a plain table name/);
    expect(() => parseMapping({ target: { ...minimal.target, keyColumn: 'id"--' } })).toThrow(/target\.keyColumn: must be a plain SQL name/);
    expect(() => parseMapping({ target: { ...minimal.target, columns: { 'x y': { value: 1 } } } })).toThrow(/target\.columns/);
    expect(parseMapping({ target: { ...minimal.target, table: 'CARDSYS.ID_PHOTOS' } }).target.table).toBe('CARDSYS.ID_PHOTOS');
  });

  it('requires the custom field name and a :key binding in the lookup', () => {
    expect(() => parseMapping({ ...minimal, studentKey: { from: 'customField' } })).toThrow(/studentKey\.customField: is required when from is customField/);
    expect(() => parseMapping({ ...minimal, studentKey: { lookup: { sql: 'select pidm from spriden where id = ?' } } })).toThrow(/studentKey\.lookup\.sql: must bind the cleaned key as :key/);
  });

  it('says when the file is missing or not YAML', () => {
    expect(() => loadMapping(path.join(dir, 'nope.yaml'))).toThrow(/Cannot read mapping file .*nope\.yaml: ENOENT/);
    expect(() => loadMapping(file('broken.yaml', 'target: [unclosed\n'))).toThrow(/broken\.yaml is not valid YAML/);
    expect(() => loadMapping(file('broken.json', '{"target": '))).toThrow(/broken\.json is not valid JSON/);
  });
});

describe('student key clean-ups', () => {
  const clean = { trim: true, case: 'none' as const };
  it('trims, strips a prefix, changes case and zero-pads, in that order', () => {
    expect(cleanKey('  123457 ', { ...clean, zeroPad: 9 })).toBe('000123457');
    expect(cleanKey('S0042', { ...clean, stripPrefix: 'S', zeroPad: 6 })).toBe('000042');
    expect(cleanKey('a00123456', { ...clean, case: 'upper' })).toBe('A00123456');
    expect(cleanKey('1234567890', { ...clean, zeroPad: 9 })).toBe('1234567890');
    expect(cleanKey(' x ', { trim: false, case: 'none' })).toBe(' x ');
  });

  it('reads the configured field and reports a missing one by name', () => {
    const rules = parseMapping(minimal).studentKey;
    expect(extractStudentKey(photo({ identifier: ' 77 ' }), rules)).toEqual({ ok: true, key: '77', raw: ' 77 ' });
    expect(extractStudentKey(photo({ identifier: null }), rules)).toMatchObject({ ok: false, code: 'no-identifier', reason: 'Photo 42 has no person.identifier to match a student by.' });
    expect(extractStudentKey(photo({ identifier: '   ' }), rules)).toMatchObject({ ok: false, code: 'no-identifier' });
    expect(extractStudentKey(photo(null), rules)).toMatchObject({ ok: false, code: 'no-identifier' });

    const byField = parseMapping({ ...minimal, studentKey: { from: 'customField', customField: 'Student ID', clean: { pattern: '^\\d{9}$', zeroPad: 9 } } }).studentKey;
    expect(extractStudentKey(photo({ customFields: { 'Student ID': '5' } }), byField)).toMatchObject({ ok: true, key: '000000005' });
    expect(extractStudentKey(photo({ customFields: { 'Student ID': 'abc' } }), byField)).toMatchObject({
      ok: false,
      code: 'key-pattern',
      reason: expect.stringContaining('custom field "Student ID" "abc"'),
    });
    expect(extractStudentKey(photo({ customFields: {} }), byField)).toMatchObject({ ok: false, reason: expect.stringContaining('custom field "Student ID"') });

    const byEmail = parseMapping({ ...minimal, studentKey: { from: 'email', clean: { case: 'lower' } } }).studentKey;
    expect(extractStudentKey(photo({ email: 'Jane.Doe@Example.EDU' }), byEmail)).toMatchObject({ ok: true, key: 'jane.doe@example.edu' });
  });
});

describe('column values', () => {
  it('resolves each source from the photo, the person, the image and constants', () => {
    const now = new Date('2026-01-02T03:04:05Z');
    const p = photo(
      { id: 9, identifier: '000000001', email: 'e@x.edu', username: 'u1', customFields: { 'Full Name': "Zoë O'Brien" }, organization: { name: 'Sim U' }, cardholderGroup: { name: 'Student' } },
      { publicKey: 'pk', dateCreated: '2024-08-27T18:19:54+0000' },
    );
    const values = resolveColumns(
      {
        a: { from: 'now' },
        b: { from: 'photo.id' },
        c: { from: 'photo.version' },
        d: { from: 'photo.dateCreated' },
        e: { from: 'photo.sha256' },
        f: { from: 'person.cardholderGroup' },
        g: { customField: 'Full Name' },
        h: { customField: 'Missing' },
        i: { value: 'CLOUDCARD' },
        j: { from: 'studentKey' },
        k: { from: 'photo.byteLength' },
        l: { from: 'person.organization' },
      },
      { photo: p, studentKey: '000000001', contentType: 'image/png', byteLength: 1234, sha256: 'ab'.repeat(32), now },
    );
    expect(values).toEqual({
      a: now,
      b: 42,
      c: 3,
      d: new Date('2024-08-27T18:19:54Z'),
      e: 'ab'.repeat(32),
      f: 'Student',
      g: "Zoë O'Brien",
      h: null,
      i: 'CLOUDCARD',
      j: '000000001',
      k: 1234,
      l: 'Sim U',
    });
  });

  it('normalizes both date formats CloudCard sends, so string order is time order', () => {
    expect(normalizeDate('2022-09-01T16:43:47Z')).toBe('2022-09-01T16:43:47.000Z');
    expect(normalizeDate('2024-08-27T18:19:54+0000')).toBe('2024-08-27T18:19:54.000Z');
    expect(normalizeDate('2024-08-27T18:19:54-0500')).toBe('2024-08-27T23:19:54.000Z');
    expect(normalizeDate(undefined)).toBe('1970-01-01T00:00:00.000Z');
    expect(normalizeDate('not a date')).toBe('1970-01-01T00:00:00.000Z');
  });
});

describe('settings', () => {
  it('reads the environment, lets flags win, and names the variable at fault', () => {
    const s = loadSettings({ CLOUDCARD_SYNC_CONCURRENCY: '4', DATABASE_URL: 'sqlite:./x.sqlite' }, { concurrency: '12' });
    expect(s.concurrency).toBe(12);
    expect(s.databaseUrl).toBe('sqlite:./x.sqlite');
    expect(s.baseUrl).toBe('https://api.onlinephotosubmission.com/api');
    expect(() => loadSettings({ CLOUDCARD_SYNC_CONCURRENCY: 'lots' })).toThrow(/CLOUDCARD_SYNC_CONCURRENCY: .*\(got "lots"\)/);
    expect(() => loadSettings({}, { concurrency: '0' })).toThrow(/--concurrency/);
    expect(() => loadSettings({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
  });

  it('refuses a CloudCard base URL that is not a URL', () => {
    expect(() => loadSettings({ CLOUDCARD_BASE_URL: 'api.cloudcard.ca' })).toThrow(/CLOUDCARD_BASE_URL: .*\(got "api\.cloudcard\.ca"\)/);
  });
});
