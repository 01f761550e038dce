/**
 * Error classes that carry the process exit code a scheduler or monitoring system can act on.
 * The codes are documented in README.md ("Exit codes"); keep the two in step.
 */
export const EXIT = {
  OK: 0,
  /** The run finished but some photos failed (they stay pending or were held/failed with a reason). */
  SOME_PHOTOS_FAILED: 1,
  /** Bad settings, environment or mapping file: nothing was attempted. */
  CONFIG: 2,
  /** CloudCard could not be reached or refused our credentials. */
  CLOUDCARD_UNREACHABLE: 3,
  /** The database could not be reached or refused the connection. */
  DATABASE_UNREACHABLE: 4,
  /** Another instance holds the run lock: `run` did nothing (a `schedule` daemon skips the tick instead). */
  LOCKED: 5,
  /** Anything unexpected: a bug. */
  INTERNAL: 70,
} as const;

export class SyncError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting, environment variable or mapping file is wrong. */
export class ConfigError extends SyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT.CONFIG, options);
  }
}

/** CloudCard could not be reached, or answered in a way we cannot go on from (e.g. the access token was refused). */
export class CloudCardError extends SyncError {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, EXIT.CLOUDCARD_UNREACHABLE, options);
  }
}

/** The database could not be reached. */
export class DatabaseError extends SyncError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT.DATABASE_UNREACHABLE, options);
  }
}

/**
 * A problem with one photo (bad bytes, no identifier, ...). It never stops the run: the photo is left
 * or held/failed per the mapping, with this message as the reason.
 */
export class PhotoError extends Error {
  constructor(
    message: string,
    /** Short machine-readable reason, used in counts and run history. */
    readonly code: string,
    /** Whether trying again later could help (network trouble) or not (corrupt image). */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'PhotoError';
  }
}
