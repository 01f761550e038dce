/**
 * The CloudCard photo as this project reads it. Only the fields we use are typed; CloudCard adds fields
 * all the time, so every object is parsed loosely and unknown fields are ignored (see ../shared/cloudcard-api.md).
 */
export const PHOTO_STATUSES = [
  'PENDING',
  'APPROVED',
  'DENIED',
  'DISCARDED',
  'READY_FOR_DOWNLOAD',
  'DOWNLOADED',
  'DONE',
  'ENROUTE',
  'ON_HOLD',
  'FAILED',
] as const;
export type PhotoStatus = (typeof PHOTO_STATUSES)[number];

export interface Organization {
  id?: number;
  name?: string;
  identifier?: string | null;
}

export interface Person {
  id?: number;
  identifier?: string | null;
  email?: string | null;
  username?: string | null;
  customFields?: Record<string, string | null>;
  organization?: Organization;
  cardholderGroup?: { name?: string } | null;
  additionalPhotos?: Array<{ id: number; additionalPhotoType?: string; publicKey?: string; links?: { bytes?: string } }>;
}

export interface Photo {
  id: number;
  version?: number;
  status: PhotoStatus | string;
  publicKey?: string;
  dateCreated?: string;
  externalURL?: string | null;
  links?: { bytes?: string | null } | null;
  aspectRatio?: number;
  width?: number;
  height?: number;
  backgroundReplaced?: boolean;
  manuallyEdited?: boolean;
  person?: Person | null;
}
