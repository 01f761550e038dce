import { describe, expect, it } from 'vitest';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { PhotoError } from '../src/errors.js';
import { checkImage, detectImageType } from '../src/cloudcard/image.js';

/** Real encoder output, so the checks are exercised on what a camera or CloudCard actually produces. */
function realJpeg(): Buffer {
  const width = 16;
  const height = 16;
  const data = Buffer.alloc(width * height * 4, 0x80);
  return Buffer.from(jpeg.encode({ data, width, height }, 80).data);
}

function realPng(): Buffer {
  const png = new PNG({ width: 8, height: 8 });
  png.data.fill(0x40);
  return PNG.sync.write(png);
}

function photoError(fn: () => unknown): PhotoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PhotoError);
    return err as PhotoError;
  }
  throw new Error('expected a PhotoError');
}

describe('detectImageType', () => {
  it('recognises JPEG and PNG by magic bytes', () => {
    expect(detectImageType(realJpeg())).toBe('jpeg');
    expect(detectImageType(realPng())).toBe('png');
  });

  it('returns null for other content, short input and empty input', () => {
    expect(detectImageType(Buffer.from('<html><body>Access Denied</body></html>'))).toBeNull();
    expect(detectImageType(Buffer.from([0xff, 0xd8]))).toBeNull();
    expect(detectImageType(Buffer.from([0x89, 0x50, 0x4e, 0x47]))).toBeNull();
    expect(detectImageType(Buffer.alloc(0))).toBeNull();
    // GIF and WebP are images, but not ones a card system takes.
    expect(detectImageType(Buffer.from('GIF89a......'))).toBeNull();
  });

  it('does not mistake a PNG signature with a wrong byte for PNG', () => {
    const png = realPng();
    png[4] = 0x0a; // CRLF-mangled by a text-mode transfer
    expect(detectImageType(png)).toBeNull();
  });
});

describe('checkImage', () => {
  it('accepts whole JPEG and PNG images and names their content type', () => {
    expect(checkImage(realJpeg(), { photoId: 1 })).toEqual({ type: 'jpeg', contentType: 'image/jpeg' });
    expect(checkImage(realPng(), { photoId: 2 })).toEqual({ type: 'png', contentType: 'image/png' });
  });

  it('refuses non-images with not-an-image (not retryable), naming the photo and the first bytes', () => {
    const err = photoError(() => checkImage(Buffer.from('<?xml version="1.0"?><Error>'), { photoId: 42 }));
    expect(err.code).toBe('not-an-image');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('photo 42');
    expect(err.message).toContain('3c 3f 78 6d');
  });

  it('refuses empty bytes with not-an-image', () => {
    const err = photoError(() => checkImage(Buffer.alloc(0), { photoId: 7 }));
    expect(err.code).toBe('not-an-image');
    expect(err.message).toContain('(empty)');
  });

  it('refuses a JPEG without its end-of-image marker as truncated-image', () => {
    const whole = realJpeg();
    const cut = whole.subarray(0, whole.length - 100);
    const err = photoError(() => checkImage(cut, { photoId: 9 }));
    expect(err.code).toBe('truncated-image');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('photo 9');
    // Only the final two bytes matter: dropping just the last byte is caught too.
    expect(photoError(() => checkImage(whole.subarray(0, whole.length - 1), { photoId: 9 })).code).toBe('truncated-image');
  });

  it('refuses a PNG without its IEND chunk as truncated-image', () => {
    const whole = realPng();
    const err = photoError(() => checkImage(whole.subarray(0, whole.length - 4), { photoId: 10 }));
    expect(err.code).toBe('truncated-image');
  });

  it('enforces allowedTypes by the bytes, not by anything the server claims', () => {
    const err = photoError(() => checkImage(realPng(), { photoId: 11, allowedTypes: ['jpeg'] }));
    expect(err.code).toBe('type-not-allowed');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/PNG.*only JPEG/);
    expect(checkImage(realJpeg(), { photoId: 12, allowedTypes: ['jpeg'] }).type).toBe('jpeg');
  });
});
