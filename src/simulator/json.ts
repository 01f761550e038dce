/**
 * The photo and person objects as the API returns them. They carry the quirks a client must cope with:
 * two date formats (set in the store), a bytes URL sometimes only in externalURL and sometimes only in
 * links.bytes, and fields no client knows about.
 */
import { IMAGE_HEIGHT, IMAGE_WIDTH } from './images.js';
import type { PhotoRecord } from './store.js';
import type { SimPerson } from './types.js';

export function personJson(person: SimPerson, full: boolean): Record<string, unknown> {
  const json: Record<string, unknown> = {
    id: person.id,
    identifier: person.identifier,
    email: person.email,
    username: person.username,
    customFields: person.customFields,
    organization: person.organization,
    cardholderGroup: { name: 'Student' },
    someNewPersonField: { addedIn: '2025.1' },
  };
  if (full) json.additionalPhotos = [];
  return json;
}

/** The list form: what GET /photo returns for each photo. */
export function photoListJson(photo: PhotoRecord, bytesBaseUrl: string): string {
  photo.listJson ??= JSON.stringify(photoJson(photo, bytesBaseUrl, false));
  return photo.listJson;
}

export function photoJson(photo: PhotoRecord, bytesBaseUrl: string, full: boolean): Record<string, unknown> {
  const bytesUrl = `${bytesBaseUrl}/${photo.objectName}`;
  const json: Record<string, unknown> = {
    id: photo.id,
    version: photo.version,
    status: photo.status,
    publicKey: photo.publicKey,
    dateCreated: photo.dateCreated,
  };
  // Every 7th photo has no links at all, every 11th has externalURL null: clients must use whichever is there.
  json.externalURL = photo.id % 11 === 0 && photo.id % 7 !== 0 ? null : bytesUrl;
  if (photo.id % 7 !== 0) json.links = { bytes: bytesUrl };
  Object.assign(json, {
    aspectRatio: IMAGE_WIDTH / IMAGE_HEIGHT,
    width: IMAGE_WIDTH,
    height: IMAGE_HEIGHT,
    backgroundReplaced: photo.ext === 'png',
    manuallyEdited: photo.id % 4 === 0,
    person: personJson(photo.person, full),
    classifications: full ? [{ type: 'FACE_DETECTED', confidence: 0.98 }] : [],
    someNewField: { introduced: '2025-01', nested: { enabled: photo.id % 2 === 0 } },
    uploadSource: 'WEB',
  });
  return json;
}
