/**
 * Real, decodable ID-photo images for the simulator, made cheaply enough for 10,000 photos.
 *
 * A handful of small base images (a face-like pattern, one per variant) are encoded once with jpeg-js /
 * pngjs. Each photo's bytes are a base image plus metadata that carries the photo id (so every photo's
 * bytes differ) and padding up to the requested size: JPEG COM segments, or a PNG tEXt chunk. Decoders skip
 * both, so the result still decodes, and still starts with the right magic bytes.
 * Building a photo's bytes is a few buffer copies, so callers may regenerate instead of caching.
 */
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { crc32 } from 'node:zlib';
import { seededRandom } from './random.js';

export const IMAGE_WIDTH = 160;
export const IMAGE_HEIGHT = 200;
export const IMAGE_VARIANTS = 8;

export type ImageFormat = 'jpeg' | 'png';

export interface ImageRecipe {
  photoId: number;
  /** Bumped when the image is replaced, so a replacement has different bytes. */
  revision: number;
  format: ImageFormat;
  /** Approximate total size; never smaller than the base image plus the id label. */
  targetBytes: number;
  /** Which base image (0..IMAGE_VARIANTS-1). */
  variant: number;
  /** Keep only the first half of the encoded image (a JPEG without its end-of-image marker). */
  truncated?: boolean;
  /** Not an image at all: an HTML error page, as a misconfigured storage bucket returns. */
  notImage?: boolean;
}

export function buildImage(recipe: ImageRecipe): Buffer {
  const label = `cloudcard-sim photo ${recipe.photoId} revision ${recipe.revision}`;
  if (recipe.notImage) {
    return Buffer.from(
      `<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body><h1>Access Denied</h1><p>${label}</p></body></html>\n`,
    );
  }
  const base = baseImage(recipe.format, recipe.variant);
  const extra = recipe.targetBytes - base.length;
  if (recipe.format === 'png') return padPng(base, label, extra);
  const image = recipe.truncated ? base.subarray(0, Math.floor(base.length / 2)) : base;
  return padJpeg(image, label, extra);
}

// ---- base images -------------------------------------------------------------------------------

const baseImages = new Map<string, Buffer>();

function baseImage(format: ImageFormat, variant: number): Buffer {
  const key = `${format}:${variant}`;
  let image = baseImages.get(key);
  if (!image) {
    const rgba = drawPortrait(variant, format === 'png');
    image =
      format === 'jpeg'
        ? jpeg.encode({ width: IMAGE_WIDTH, height: IMAGE_HEIGHT, data: rgba }, 85).data
        : PNG.sync.write(Object.assign(new PNG({ width: IMAGE_WIDTH, height: IMAGE_HEIGHT }), { data: rgba }));
    baseImages.set(key, image);
  }
  return image;
}

/** A head-and-shoulders silhouette on a gradient; colours vary by variant. PNGs get a transparent background. */
function drawPortrait(variant: number, transparentBackground: boolean): Buffer {
  const random = seededRandom(variant + 101);
  const channel = () => 60 + Math.floor(random() * 170);
  const background = [channel(), channel(), channel()] as const;
  const skin = [150 + Math.floor(random() * 90), 110 + Math.floor(random() * 70), 80 + Math.floor(random() * 60)] as const;
  const shirt = [channel(), channel(), channel()] as const;
  const w = IMAGE_WIDTH;
  const h = IMAGE_HEIGHT;
  const data = Buffer.alloc(w * h * 4);
  const inEllipse = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) =>
    ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let rgb: readonly number[];
      let alpha = 255;
      if (inEllipse(x, y, 62, 80, 5, 4) || inEllipse(x, y, 98, 80, 5, 4)) rgb = [30, 30, 40]; // eyes
      else if (inEllipse(x, y, 80, 112, 14, 5) && y > 112) rgb = [150, 60, 60]; // mouth
      else if (inEllipse(x, y, 80, 88, 40, 52)) rgb = skin; // head
      else if (inEllipse(x, y, 80, 215, 78, 70)) rgb = shirt; // shoulders
      else {
        const shade = 1 - (0.35 * y) / h;
        rgb = background.map((c) => Math.round(c * shade));
        if (transparentBackground) alpha = 0;
      }
      const i = (y * w + x) * 4;
      data[i] = rgb[0] ?? 0;
      data[i + 1] = rgb[1] ?? 0;
      data[i + 2] = rgb[2] ?? 0;
      data[i + 3] = alpha;
    }
  }
  return data;
}

// ---- padding -----------------------------------------------------------------------------------

/** A JPEG segment's length field counts itself (2 bytes) but not the marker; it cannot exceed 0xFFFF. */
const JPEG_MAX_SEGMENT_DATA = 0xffff - 2;
const JPEG_MAX_SEGMENT = 4 + JPEG_MAX_SEGMENT_DATA;
/** Printable filler, so the padding reads as text in a hex dump and in decoders that expose comments. */
const FILLER = Buffer.alloc(JPEG_MAX_SEGMENT_DATA, ' cloudcard-sim padding');

function jpegComment(label: string, segmentSize: number): Buffer {
  const segment = Buffer.allocUnsafe(segmentSize);
  segment.writeUInt16BE(0xfffe, 0);
  segment.writeUInt16BE(segmentSize - 2, 2);
  const written = segment.write(label, 4, 'latin1');
  FILLER.copy(segment, 4 + written, 0, segmentSize - 4 - written);
  return segment;
}

/**
 * Inserts COM segments after the JFIF APP0 header (which strict readers expect right after SOI): the first
 * carries the label, the rest are filler, and together they add `extra` bytes when that is possible.
 */
function padJpeg(image: Buffer, label: string, extra: number): Buffer {
  let insertAt = 2; // after SOI
  if (image[2] === 0xff && image[3] === 0xe0) insertAt = 4 + image.readUInt16BE(4);
  const labelMin = 4 + Buffer.byteLength(label, 'latin1');
  const segments: Buffer[] = [];
  if (extra <= labelMin) {
    segments.push(jpegComment(label, labelMin));
  } else {
    const fullSegments = Math.floor((extra - labelMin) / JPEG_MAX_SEGMENT);
    let first = extra - fullSegments * JPEG_MAX_SEGMENT;
    if (first > JPEG_MAX_SEGMENT) {
      // Too much for one segment: the label segment stays minimal and one more filler segment takes the rest.
      segments.push(jpegComment('', first - labelMin));
      first = labelMin;
    }
    segments.unshift(jpegComment(label, first));
    if (fullSegments > 0) {
      const full = jpegComment('', JPEG_MAX_SEGMENT);
      for (let i = 0; i < fullSegments; i++) segments.push(full);
    }
  }
  return Buffer.concat([image.subarray(0, insertAt), ...segments, image.subarray(insertAt)]);
}

/** Inserts a tEXt chunk (keyword "Comment") before IEND; PNG chunks may be up to 2^31-1 bytes. */
function padPng(image: Buffer, label: string, extra: number): Buffer {
  const header = Buffer.from(`Comment\0${label}`, 'latin1');
  const dataLength = Math.max(header.length, extra - 12);
  const chunk = Buffer.alloc(12 + dataLength, ' ');
  chunk.writeUInt32BE(dataLength, 0);
  chunk.write('tEXt', 4, 'latin1');
  header.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + dataLength)), 8 + dataLength);
  const iend = image.length - 12; // IEND is always the last chunk: length(4) + "IEND" + crc(4)
  return Buffer.concat([image.subarray(0, iend), chunk, image.subarray(iend)]);
}
