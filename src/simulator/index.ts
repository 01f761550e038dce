/**
 * A faithful local CloudCard API for tests, the demo and the benchmark. See startSimulator.
 *
 * For the demo's student table: `seedPeople(photoCount, seed, unmatchedEvery).map(studentNumberFor)`,
 * keeping the non-null values, gives the canonical 9-digit student numbers of every matchable person.
 */
export { startSimulator, DEFAULT_ACCESS_TOKEN } from './server.js';
export { runSimulatorServer } from './run.js';
export { seedPeople, studentNumberFor } from './people.js';
export { SimQueue, SimStatusQueue } from './sqs.js';
export type { SimQueueMessage, SimQueueOperation, SimQueueOptions, StatusQueueOptions } from './sqs.js';
export type { FaultController, FaultKind, FaultMatch, FaultRule, InjectedFault } from './faults.js';
export type {
  AddPhotoInput,
  CorruptPhotoOptions,
  ImageContentType,
  ImageExt,
  PhotoCorruption,
  RequestLogEntry,
  SeedPerson,
  SessionCounts,
  SimOrganization,
  SimPerson,
  SimPhoto,
  Simulator,
  SimulatorOptions,
  StatusHistoryEntry,
} from './types.js';
