/**
 * Public types of the local CloudCard simulator. Other parts of the project (tests, demo, benchmark)
 * code against these names, so change them only together with their users.
 */
import type { FaultController } from './faults.js';
import type { SimStatusQueue, StatusQueueOptions } from './sqs.js';

export interface SimulatorOptions {
  /** Interface to listen on; loopback only. Default '127.0.0.1'. */
  host?: string;
  /** Default 0 (a random free port). */
  port?: number;
  /** The persistent access token the simulator accepts. Default 'sim-persistent-access-token'. */
  accessToken?: string;
  /** Photos seeded in READY_FOR_DOWNLOAD. Default 40. */
  photoCount?: number;
  /** Approximate size of each generated image in bytes. Default 40_000. */
  imageBytes?: number;
  /** Every Nth photo is a PNG, the others JPEG. Default 5; 0 = no PNGs. */
  pngEvery?: number;
  /** Added to every API and bytes response. Default 0. */
  latencyMs?: number;
  /** Session token lifetime. Default 12 hours. */
  tokenTtlMs?: number;
  /** Makes all seeded data deterministic. Default 1. */
  seed?: number;
  /** Every Nth seeded person gets an identifier that matches no student (see seedPeople). Default 0 = none. */
  unmatchedEvery?: number;
  /** Replaces the seeded people entirely; photo i belongs to people[i % people.length]. */
  people?: SeedPerson[];
  /** Serve a local SQS status queue fed whenever a photo reaches `status` (see sqs.ts). */
  statusQueue?: StatusQueueOptions;
}

export interface SeedPerson {
  identifier: string | null;
  email: string;
  username: string;
  customFields: Record<string, string | null>;
}

export interface SimOrganization {
  id: number;
  name: string;
  identifier: string;
}

export interface SimPerson {
  id: number;
  identifier: string | null;
  email: string;
  username: string;
  customFields: Record<string, string | null>;
  organization: SimOrganization;
}

export type ImageContentType = 'image/jpeg' | 'image/png';
export type ImageExt = 'jpg' | 'png';

export interface StatusHistoryEntry {
  status: string;
  version: number;
  at: string;
  reason?: string;
}

/** The server-side record of one photo: what tests inspect. */
export interface SimPhoto {
  id: number;
  version: number;
  status: string;
  dateCreated: string;
  publicKey: string;
  person: SimPerson;
  /** The image bytes currently behind publicKey (generated on demand for large data sets). */
  readonly bytes: Buffer;
  contentType: ImageContentType;
  ext: ImageExt;
  statusHistory: StatusHistoryEntry[];
}

/**
 * Bad data a photo can carry, to exercise the client's and the mapping's error paths:
 * - notImage: the bytes are an HTML error page (served as image/jpeg, as misconfigured storage does)
 * - truncatedJpeg: a JPEG cut short (valid magic bytes, no end-of-image marker)
 * - oversize: a valid image padded past a size limit (see CorruptPhotoOptions.sizeBytes)
 * - nullIdentifier / blankIdentifier / unknownStudent: the person cannot be matched to a student
 * - quotesAndUnicode: custom fields full of quotes, SQL and emoji (the identifier stays matchable)
 */
export type PhotoCorruption =
  | 'notImage'
  | 'truncatedJpeg'
  | 'oversize'
  | 'nullIdentifier'
  | 'blankIdentifier'
  | 'unknownStudent'
  | 'quotesAndUnicode';

export interface CorruptPhotoOptions {
  /** Size of an 'oversize' image. Default 25 MiB. */
  sizeBytes?: number;
}

export type AddPhotoInput = Partial<Omit<SimPhoto, 'id' | 'version' | 'bytes' | 'person'>> & {
  person?: Partial<SimPerson>;
  bytes?: Buffer;
  contentType?: ImageContentType;
  status?: string;
  /** Apply one kind of bad data right away (same as corruptPhoto). */
  corruption?: PhotoCorruption;
  corruptionOptions?: CorruptPhotoOptions;
};

export interface RequestLogEntry {
  method: string;
  /** Path and query, without scheme and host. */
  path: string;
  /** The status sent; 0 when no response was sent at all (a lostResponse fault). */
  status: number;
  /** Whether an X-Auth-Token header was sent (it must not be, on bytes). */
  authHeader: boolean;
  /** The fault injected into this request, if any. */
  fault?: string;
}

export interface SessionCounts {
  issued: number;
  active: number;
  loggedOut: number;
}

export interface Simulator {
  /** API base the client is configured with, e.g. http://127.0.0.1:PORT/api */
  baseUrl: string;
  /** Object-storage-like base for image bytes, e.g. http://127.0.0.1:PORT/storage */
  bytesBaseUrl: string;
  accessToken: string;
  /** All photos, ordered by id. */
  photos(): SimPhoto[];
  photo(id: number): SimPhoto | undefined;
  addPhoto(p: AddPhotoInput): SimPhoto;
  /** As if the card office acted: bumps version, records history, notifies listeners. */
  setStatus(id: number, status: string, reason?: string): SimPhoto;
  /** New image bytes under a new publicKey, bumped version (re-approval with a new image). */
  replaceImage(id: number, bytes?: Buffer): SimPhoto;
  corruptPhoto(id: number, kind: PhotoCorruption, opts?: CorruptPhotoOptions): SimPhoto;
  /** Every issued session token becomes invalid (401). */
  revokeSessions(): void;
  sessions(): SessionCounts;
  requests(): RequestLogEntry[];
  faults: FaultController;
  onStatusChange(listener: (photo: SimPhoto, previousStatus: string) => void): () => void;
  /** The status queue, when `statusQueue` was given: `queue.url` for the SDK, `queue.endpoint` as its endpoint. */
  queue: SimStatusQueue | undefined;
  close(): Promise<void>;
}
