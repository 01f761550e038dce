/**
 * The simulator's server-side state: photos, their people and the image bytes behind every public key.
 * Everything the HTTP layer and the test helpers change goes through here, so versions, history, cached
 * JSON and status listeners stay consistent.
 */
import { createHash } from 'node:crypto';
import { PHOTO_STATUSES } from '../cloudcard/types.js';
import { buildImage, IMAGE_VARIANTS, type ImageFormat, type ImageRecipe } from './images.js';
import { seedPeople } from './people.js';
import type {
  AddPhotoInput,
  CorruptPhotoOptions,
  ImageContentType,
  ImageExt,
  PhotoCorruption,
  SeedPerson,
  SimOrganization,
  SimPerson,
  SimPhoto,
  StatusHistoryEntry,
} from './types.js';

export const ORGANIZATION: SimOrganization = { id: 1, name: 'Simulated State University', identifier: 'SIMU' };
const FIRST_PERSON_ID = 1000;
const FIRST_DATE = Date.parse('2022-09-01T16:43:47Z');
/** Generated images are kept in memory only while all of them together stay below this. */
const CACHE_LIMIT_BYTES = 200 * 1024 * 1024;
/** A single image above this is always regenerated (oversize photos, multi-megabyte tests). */
const CACHE_LIMIT_ONE_IMAGE = 8 * 1024 * 1024;
const DEFAULT_OVERSIZE_BYTES = 25 * 1024 * 1024;

export interface StoreOptions {
  photoCount: number;
  imageBytes: number;
  pngEvery: number;
  seed: number;
  unmatchedEvery: number;
  people?: SeedPerson[];
}

type ImageSource = { kind: 'generated'; recipe: ImageRecipe } | { kind: 'custom'; bytes: Buffer };

/** The bytes behind one storage object name (`<publicKey>.<ext>`); old names stay served after a replacement. */
export interface StoredImage {
  photoId: number;
  contentType: ImageContentType;
  source: ImageSource;
  cached?: Buffer;
}

export class PhotoRecord implements SimPhoto {
  id: number;
  version: number;
  status: string;
  dateCreated: string;
  publicKey: string;
  person: SimPerson;
  contentType: ImageContentType;
  ext: ImageExt;
  statusHistory: StatusHistoryEntry[];
  /** Counts image replacements; part of the recipe so replaced bytes differ. */
  imageRevision = 0;
  /** The photo's list-form JSON, reset on every change (listing 10,000 photos re-serializes nothing). */
  listJson: string | undefined;

  constructor(
    private readonly store: PhotoStore,
    fields: Omit<SimPhoto, 'bytes'>,
  ) {
    this.id = fields.id;
    this.version = fields.version;
    this.status = fields.status;
    this.dateCreated = fields.dateCreated;
    this.publicKey = fields.publicKey;
    this.person = fields.person;
    this.contentType = fields.contentType;
    this.ext = fields.ext;
    this.statusHistory = fields.statusHistory;
  }

  get objectName(): string {
    return `${this.publicKey}.${this.ext}`;
  }

  get bytes(): Buffer {
    const image = this.store.image(this.objectName);
    if (!image) throw new Error(`no image stored for photo ${this.id}`);
    return this.store.bytesOf(image);
  }
}

export type StatusListener = (photo: SimPhoto, previousStatus: string) => void;

export class PhotoStore {
  private readonly byId = new Map<number, PhotoRecord>();
  /** Photos in id order; ids only ever grow, so appending keeps it sorted. */
  private readonly ordered: PhotoRecord[] = [];
  private readonly images = new Map<string, StoredImage>();
  private readonly listeners = new Set<StatusListener>();
  private readonly people: SeedPerson[];
  private readonly cacheImages: boolean;
  private nextPersonId: number;

  constructor(private readonly opts: StoreOptions) {
    this.people = opts.people ?? seedPeople(Math.max(opts.photoCount, 1), opts.seed, opts.unmatchedEvery);
    if (this.people.length === 0) throw new Error('SimulatorOptions.people must not be empty');
    this.nextPersonId = FIRST_PERSON_ID + this.people.length;
    this.cacheImages = opts.photoCount * opts.imageBytes < CACHE_LIMIT_BYTES;
    for (let i = 0; i < opts.photoCount; i++) this.addPhoto({});
  }

  all(): PhotoRecord[] {
    return [...this.ordered];
  }

  /** Photos in id order without copying the list (for paging). */
  inOrder(): readonly PhotoRecord[] {
    return this.ordered;
  }

  get(id: number): PhotoRecord | undefined {
    return this.byId.get(id);
  }

  image(objectName: string): StoredImage | undefined {
    return this.images.get(objectName);
  }

  bytesOf(image: StoredImage): Buffer {
    if (image.cached) return image.cached;
    if (image.source.kind === 'custom') return image.source.bytes;
    const bytes = buildImage(image.source.recipe);
    if (this.cacheImages && bytes.length <= CACHE_LIMIT_ONE_IMAGE) image.cached = bytes;
    return bytes;
  }

  /** The newest photo's person whose identifier (exactly as stored) or email equals `value`. */
  findPerson(value: string, by: 'identifier' | 'email'): SimPerson | undefined {
    for (let i = this.ordered.length - 1; i >= 0; i--) {
      const person = this.ordered[i]?.person;
      if (person && person[by] === value) return person;
    }
    return undefined;
  }

  onStatusChange(listener: StatusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  addPhoto(input: AddPhotoInput): PhotoRecord {
    const id = (this.ordered.at(-1)?.id ?? 0) + 1;
    const status = input.status ?? 'READY_FOR_DOWNLOAD';
    assertStatus(status);
    const version = 1 + (id % 3); // not always 0 or 1, so a client cannot get away with assuming it
    const dateCreated = input.dateCreated ?? formatDate(FIRST_DATE + id * 37 * 60_000, id);
    const format = this.formatFor(id, input);
    const photo = new PhotoRecord(this, {
      id,
      version,
      status,
      dateCreated,
      publicKey: input.publicKey ?? this.publicKeyFor(id, 0),
      person: this.personFor(id, input.person),
      contentType: format === 'png' ? 'image/png' : 'image/jpeg',
      ext: format === 'png' ? 'png' : 'jpg',
      statusHistory: input.statusHistory ?? [{ status, version, at: new Date().toISOString() }],
    });
    this.byId.set(id, photo);
    this.ordered.push(photo);
    this.images.set(photo.objectName, {
      photoId: id,
      contentType: photo.contentType,
      source: input.bytes ? { kind: 'custom', bytes: input.bytes } : { kind: 'generated', recipe: this.recipeFor(photo, format) },
    });
    if (input.corruption) this.corruptPhoto(id, input.corruption, input.corruptionOptions);
    return photo;
  }

  /**
   * Sets a status as CloudCard does on any update: the version goes up even if the status is unchanged,
   * and listeners hear every write (a status queue fires whenever a photo reaches a status).
   */
  setStatus(id: number, status: string, reason?: string): PhotoRecord {
    const photo = this.mustGet(id);
    assertStatus(status);
    const previous = photo.status;
    photo.status = status;
    this.bumpVersion(photo, reason);
    this.notify(photo, previous);
    return photo;
  }

  /** A new image under a new public key; the old key keeps serving the old bytes, as object storage would. */
  replaceImage(id: number, bytes?: Buffer): PhotoRecord {
    const photo = this.mustGet(id);
    photo.imageRevision++;
    photo.publicKey = this.publicKeyFor(id, photo.imageRevision);
    const format: ImageFormat = bytes ? sniffFormat(bytes, undefined) : photo.ext === 'png' ? 'png' : 'jpeg';
    photo.contentType = format === 'png' ? 'image/png' : 'image/jpeg';
    photo.ext = format === 'png' ? 'png' : 'jpg';
    this.images.set(photo.objectName, {
      photoId: id,
      contentType: photo.contentType,
      source: bytes ? { kind: 'custom', bytes } : { kind: 'generated', recipe: this.recipeFor(photo, format) },
    });
    this.bumpVersion(photo, 'image replaced');
    this.notify(photo, photo.status);
    return photo;
  }

  /**
   * Test set-up: gives a photo one kind of bad data (see PhotoCorruption). It does not bump the version,
   * because it stands for how the photo was from the start, not for a change.
   */
  corruptPhoto(id: number, kind: PhotoCorruption, opts: CorruptPhotoOptions = {}): PhotoRecord {
    const photo = this.mustGet(id);
    const person = photo.person;
    switch (kind) {
      case 'notImage':
        this.regenerate(photo, (r) => ({ ...r, notImage: true }));
        break;
      case 'truncatedJpeg':
        if (photo.ext === 'png') {
          // The kind is about JPEG; a PNG photo becomes a JPEG one (its URL's extension changes with it).
          this.images.delete(photo.objectName);
          photo.ext = 'jpg';
          photo.contentType = 'image/jpeg';
          this.images.set(photo.objectName, {
            photoId: id,
            contentType: photo.contentType,
            source: { kind: 'generated', recipe: this.recipeFor(photo, 'jpeg') },
          });
        }
        this.regenerate(photo, (r) => ({ ...r, format: 'jpeg', truncated: true }));
        break;
      case 'oversize':
        this.regenerate(photo, (r) => ({ ...r, targetBytes: opts.sizeBytes ?? DEFAULT_OVERSIZE_BYTES }));
        break;
      case 'nullIdentifier':
        photo.person = { ...person, id: this.nextPersonId++, identifier: null, customFields: { ...person.customFields, 'Student ID': null } };
        break;
      case 'blankIdentifier':
        photo.person = { ...person, id: this.nextPersonId++, identifier: '   ', customFields: { ...person.customFields, 'Student ID': '' } };
        break;
      case 'unknownStudent': {
        const unknown = `999${String(id).padStart(6, '0').slice(-6)}`;
        photo.person = { ...person, id: this.nextPersonId++, identifier: unknown, customFields: { ...person.customFields, 'Student ID': unknown } };
        break;
      }
      case 'quotesAndUnicode':
        photo.person = {
          ...person,
          customFields: {
            ...person.customFields,
            'First Name': "Robert'); DROP TABLE students; --",
            'Last Name': 'O"Connor \\ Straße',
            'Full Name': "Bobby \"Tables\" O'Connor 🎓",
            Nickname: '😀 “smart quotes” ‘single’ `backtick` 中文 עברית',
            Notes: "line one\nline two\ttabbed; '; DROP TABLE students; --",
          },
        };
        break;
      default: {
        const never: never = kind;
        throw new Error(`unknown corruption ${String(never)}`);
      }
    }
    photo.listJson = undefined;
    return photo;
  }

  private regenerate(photo: PhotoRecord, change: (recipe: ImageRecipe) => ImageRecipe): void {
    const image = this.images.get(photo.objectName);
    const base = image?.source.kind === 'generated' ? image.source.recipe : this.recipeFor(photo, photo.ext === 'png' ? 'png' : 'jpeg');
    this.images.set(photo.objectName, {
      photoId: photo.id,
      contentType: photo.contentType,
      source: { kind: 'generated', recipe: change(base) },
    });
  }

  private formatFor(id: number, input: AddPhotoInput): ImageFormat {
    if (input.bytes) return sniffFormat(input.bytes, input.contentType);
    if (input.contentType) return input.contentType === 'image/png' ? 'png' : 'jpeg';
    if (input.ext) return input.ext === 'png' ? 'png' : 'jpeg';
    return this.opts.pngEvery > 0 && id % this.opts.pngEvery === 0 ? 'png' : 'jpeg';
  }

  private recipeFor(photo: PhotoRecord, format: ImageFormat): ImageRecipe {
    return {
      photoId: photo.id,
      revision: photo.imageRevision,
      format,
      targetBytes: this.opts.imageBytes,
      variant: (photo.id * 7 + photo.imageRevision * 3 + this.opts.seed) % IMAGE_VARIANTS,
    };
  }

  private bumpVersion(photo: PhotoRecord, reason: string | undefined): void {
    photo.version++;
    const entry: StatusHistoryEntry = { status: photo.status, version: photo.version, at: new Date().toISOString() };
    if (reason !== undefined) entry.reason = reason;
    photo.statusHistory.push(entry);
    photo.listJson = undefined;
  }

  private notify(photo: PhotoRecord, previous: string): void {
    for (const listener of this.listeners) listener(photo, previous);
  }

  private mustGet(id: number): PhotoRecord {
    const photo = this.byId.get(id);
    if (!photo) throw new Error(`simulator has no photo ${id}`);
    return photo;
  }

  private publicKeyFor(id: number, revision: number): string {
    return createHash('sha256').update(`cloudcard-sim:${this.opts.seed}:${id}:${revision}`).digest('hex').slice(0, 32);
  }

  /**
   * Photo i continues the seeded cycle of people unless the caller names one. A caller-given identifier
   * that an existing person already has reuses that person (same CloudCard person id), as a resubmission does.
   */
  private personFor(photoId: number, given: Partial<SimPerson> | undefined): SimPerson {
    const index = (photoId - 1) % this.people.length;
    const seed = this.people[index];
    if (!seed) throw new Error('no seeded person');
    const seeded: SimPerson = { id: FIRST_PERSON_ID + index, ...cloneSeed(seed), organization: ORGANIZATION };
    if (!given) return seeded;
    let base = seeded;
    if (given.identifier !== undefined) {
      const existing = given.identifier === null ? undefined : this.findPerson(given.identifier, 'identifier');
      base = existing
        ? { ...existing, customFields: { ...existing.customFields } }
        : {
            id: this.nextPersonId++,
            identifier: given.identifier,
            email: `person${photoId}@sim.example.edu`,
            username: `person${photoId}`,
            customFields: { 'Student ID': given.identifier },
            organization: ORGANIZATION,
          };
    }
    return { ...base, ...given, customFields: { ...base.customFields, ...given.customFields } } as SimPerson;
  }
}

function cloneSeed(seed: SeedPerson): SeedPerson {
  return { identifier: seed.identifier, email: seed.email, username: seed.username, customFields: { ...seed.customFields } };
}

function assertStatus(status: string): void {
  if (!(PHOTO_STATUSES as readonly string[]).includes(status)) throw new Error(`unknown photo status ${status}`);
}

export function isPhotoStatus(status: string): boolean {
  return (PHOTO_STATUSES as readonly string[]).includes(status);
}

/** Caller-given bytes are served under the type they claim, else as what their magic bytes say. */
function sniffFormat(bytes: Buffer, claimed: ImageContentType | undefined): ImageFormat {
  if (claimed) return claimed === 'image/png' ? 'png' : 'jpeg';
  return bytes[0] === 0x89 && bytes[1] === 0x50 ? 'png' : 'jpeg';
}

/** CloudCard returns both forms; alternate them so clients must parse both. */
function formatDate(ms: number, id: number): string {
  const iso = new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return id % 2 === 0 ? iso.replace(/Z$/, '+0000') : iso;
}
