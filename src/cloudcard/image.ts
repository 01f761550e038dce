/**
 * Checks on downloaded image bytes. Pure functions with no I/O, so every rule is unit-tested on its own.
 *
 * The bytes come from object storage and are untrusted: we decide the type by the file's magic bytes (never
 * by the URL's extension or the Content-Type header, which a misconfigured bucket gets wrong), and we
 * refuse a JPEG that does not end with its end-of-image marker, because a cut-off JPEG still starts right
 * and would otherwise be stored as a half-grey ID photo.
 */
import { PhotoError } from '../errors.js';

export type ImageType = 'jpeg' | 'png';

export const CONTENT_TYPES = {
  jpeg: 'image/jpeg',
  png: 'image/png',
} as const satisfies Record<ImageType, string>;

export type ImageContentType = (typeof CONTENT_TYPES)[ImageType];

const JPEG_MAGIC = [0xff, 0xd8, 0xff] as const;
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] as const;
/** Every PNG ends with an IEND chunk: length 0, type "IEND", and its fixed CRC. */
const PNG_TRAILER = [0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82] as const;

function startsWith(buf: Uint8Array, magic: readonly number[]): boolean {
  if (buf.length < magic.length) return false;
  return magic.every((b, i) => buf[i] === b);
}

function endsWith(buf: Uint8Array, trailer: readonly number[]): boolean {
  if (buf.length < trailer.length) return false;
  const start = buf.length - trailer.length;
  return trailer.every((b, i) => buf[start + i] === b);
}

/** The image type named by the magic bytes at the start of `buf`, or null if it is neither JPEG nor PNG. */
export function detectImageType(buf: Uint8Array): ImageType | null {
  if (startsWith(buf, JPEG_MAGIC)) return 'jpeg';
  if (startsWith(buf, PNG_MAGIC)) return 'png';
  return null;
}

export interface CheckImageOptions {
  /** Named in error messages, so a person can find the photo in CloudCard. */
  photoId: number;
  /** Types the institution accepts; default both. */
  allowedTypes?: readonly ImageType[];
}

export interface CheckedImage {
  type: ImageType;
  contentType: ImageContentType;
}

/**
 * Validates complete image bytes and returns their type. Throws PhotoError:
 * - `not-an-image` (not retryable): neither JPEG nor PNG magic bytes (e.g. an HTML error page);
 * - `type-not-allowed` (not retryable): a real image of a type the institution does not accept;
 * - `truncated-image` (not retryable): a JPEG not ending in FF D9, or a PNG not ending in its IEND chunk.
 *   A transfer cut off in flight is caught earlier (Content-Length, connection errors) and retried, so
 *   what reaches this check is a file stored broken: a person has to replace it.
 */
export function checkImage(buf: Uint8Array, opts: CheckImageOptions): CheckedImage {
  const type = detectImageType(buf);
  if (type === null) {
    const head = Buffer.from(buf.subarray(0, 8)).toString('hex').replace(/(..)(?!$)/g, '$1 ');
    throw new PhotoError(
      `photo ${opts.photoId}: downloaded bytes are not a JPEG or PNG image (${buf.length} bytes, starting ${head || '(empty)'})`,
      'not-an-image',
      false,
    );
  }
  const allowed = opts.allowedTypes ?? ['jpeg', 'png'];
  if (!allowed.includes(type)) {
    throw new PhotoError(
      `photo ${opts.photoId}: image is a ${type.toUpperCase()}, but only ${allowed.map((t) => t.toUpperCase()).join(', ')} is accepted`,
      'type-not-allowed',
      false,
    );
  }
  if (type === 'jpeg' && !endsWith(buf, [0xff, 0xd9])) {
    throw new PhotoError(
      `photo ${opts.photoId}: JPEG is cut off (${buf.length} bytes, no end-of-image marker FF D9 at the end)`,
      'truncated-image',
      false,
    );
  }
  if (type === 'png' && !endsWith(buf, PNG_TRAILER)) {
    throw new PhotoError(
      `photo ${opts.photoId}: PNG is cut off (${buf.length} bytes, no IEND chunk at the end)`,
      'truncated-image',
      false,
    );
  }
  return { type, contentType: CONTENT_TYPES[type] };
}
