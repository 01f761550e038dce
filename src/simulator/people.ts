/**
 * The people the simulator seeds. The demo builds its student table from the same list, so the two agree
 * on who is a student: call `seedPeople(count, seed, unmatchedEvery)` with the simulator's options and keep
 * `studentNumberFor(person)` of every person for whom it is not null.
 *
 * Identifiers are 9-digit, zero-padded student numbers ("000123457"), but like real imported data some are
 * typed with the leading zeros lost ("123457") or with surrounding spaces (" 000123460 "), so the mapping's
 * clean-ups (trim, zero-pad) have something to do.
 */
import { pick, seededRandom } from './random.js';
import type { SeedPerson } from './types.js';

const FIRST_NAMES = ['Ava', 'Liam', 'Maya', 'Noah', 'Sofia', 'Ethan', 'Amara', 'Lucas', 'Mei', 'Omar', 'Chloé', 'José', 'Ingrid', 'Kwame', 'Priya', 'Søren'];
const LAST_NAMES = ['Smith', 'Garcia', 'Nguyễn', 'Okafor', 'Müller', 'Kim', 'Johnson', 'Rossi', 'Haddad', 'Patel', 'Novak', 'Silva', 'Brown', 'Tanaka'];

/** Student numbers below this are real students; identifiers that do not match start with 999. */
const STUDENT_NUMBER_LIMIT = 900_000_000;

export function seedPeople(count: number, seed = 1, unmatchedEvery = 0): SeedPerson[] {
  const random = seededRandom(seed * 7919 + 17);
  const people: SeedPerson[] = [];
  let unmatchedSoFar = 0;
  for (let i = 0; i < count; i++) {
    // A step of 11 with an offset below 11 keeps the numbers unique and not simply consecutive.
    const studentNumber = 100_000 + i * 11 + Math.floor(random() * 10);
    const canonical = String(studentNumber).padStart(9, '0');
    let first = pick(random, FIRST_NAMES);
    let last = pick(random, LAST_NAMES);
    if (i === 1) {
      // One name with a diacritic and an apostrophe, to catch quoting and encoding mistakes.
      first = 'Zoë';
      last = "O'Brien";
    }

    let identifier: string | null;
    let studentId: string | null;
    if (unmatchedEvery > 0 && i % unmatchedEvery === unmatchedEvery - 1) {
      // The first unmatched person has no identifier at all; the rest have one outside the student range.
      identifier = unmatchedSoFar === 0 ? null : `999${String(studentNumber).padStart(6, '0').slice(-6)}`;
      studentId = identifier;
      unmatchedSoFar++;
    } else if (i % 10 === 3) {
      identifier = String(studentNumber); // leading zeros lost
      studentId = canonical;
    } else if (i % 10 === 6) {
      identifier = ` ${canonical} `; // pasted with surrounding spaces
      studentId = canonical;
    } else {
      identifier = canonical;
      studentId = canonical;
    }

    const asciiName = `${first}.${last}`.normalize('NFD').replace(/[^A-Za-z.]/g, '').toLowerCase();
    people.push({
      identifier,
      email: `${asciiName}.${i}@students.sim.example.edu`,
      username: `s${canonical}`,
      customFields: {
        'First Name': first,
        'Last Name': last,
        'Full Name': `${first} ${last}`,
        'Student ID': studentId,
        'Preferred Name': null,
      },
    });
  }
  return people;
}

/**
 * The canonical 9-digit student number a person's identifier stands for, or null if it matches no student
 * (no identifier, not digits, or outside the student range). This is the clean-up the example mappings
 * perform (trim, then zero-pad to 9).
 */
export function studentNumberFor(person: { identifier: string | null | undefined }): string | null {
  const raw = person.identifier?.trim();
  if (!raw || !/^\d{1,9}$/.test(raw)) return null;
  return Number(raw) < STUDENT_NUMBER_LIMIT ? raw.padStart(9, '0') : null;
}
