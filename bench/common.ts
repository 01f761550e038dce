/**
 * What bench.ts and its measured children (worker.ts) share: the shape of a measurement's task and result,
 * the benchmark's target table, and its mapping.
 */
import { parseMapping, type Mapping } from '../src/config/mapping.js';

/** The campus table the job writes into: one row per student exists before the run (mode: update). */
export const STUDENTS_TABLE = 'bench_students';

/** A benchmark table, in the scenario's schema when the database has one (PostgreSQL). */
export function benchTable(name: string, schema: string | undefined): string {
  return schema ? `${schema}.${name}` : name;
}
/** The database limit's table: key + blob, nothing else. */
export const BLOBS_TABLE = 'bench_blobs';

export type MeasureKind = 'job' | 'network' | 'database' | 'sequential';

export interface MeasureTask {
  kind: MeasureKind;
  /** Photos the simulator offers (and the job is expected to store). */
  photos: number;
  imageBytes: number;
  /** Photos to process; less than `photos` only for the sequential baseline on a subset. */
  limit: number;
  concurrency: number;
  databaseUrl: string;
  jobSchema?: string | undefined;
  /** The simulator to talk to (not used by the database limit). */
  baseUrl?: string;
  accessToken?: string;
}

export interface MeasureResult {
  kind: MeasureKind;
  photos: number;
  bytes: number;
  wallMs: number;
  /** process.resourceUsage().maxRSS of the measuring child, in MB. */
  peakRssMb: number;
  /** Anything that did not go as expected (a photo not stored, ...): the figure is then suspect. */
  problem?: string;
}

/**
 * The mapping the benchmark's job runs with: the simulator's people, keyed by their cleaned identifier, onto
 * existing student rows, as a campus card system is usually set up (the same shape as mappings/demo-sqlite.yaml).
 */
export function benchMapping(targetTable: string): Mapping {
  return parseMapping(
    {
      name: 'benchmark',
      statuses: ['READY_FOR_DOWNLOAD'],
      markAs: 'DOWNLOADED',
      studentKey: { from: 'identifier', clean: { trim: true, zeroPad: 9, pattern: '^\\d{9}$' } },
      target: {
        table: targetTable,
        keyColumn: 'student_id',
        blobColumn: 'photo',
        mode: 'update',
        columns: {
          photo_updated_at: { from: 'now' },
          cloudcard_photo_id: { from: 'photo.id' },
          photo_type: { from: 'photo.contentType' },
        },
      },
      unmatched: { action: 'hold' },
    },
    'bench mapping',
  );
}
