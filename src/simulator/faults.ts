/**
 * Switchable faults, so a test can make the simulator misbehave the way networks and servers do.
 * A rule matches requests by method, path and/or photo id; the first matching rule that still has uses
 * left is applied (and, with `probability`, only on a deterministic share of matches).
 */
import { seededRandom, type Random } from './random.js';

export type FaultKind =
  /** Respond with that status (and a JSON error) instead of handling the request: no effect. */
  | 'status500'
  | 'status502'
  | 'status503'
  /** 429 with a Retry-After header (retryAfterSeconds, default 1). */
  | 'status429'
  | 'status401'
  | 'status404'
  | 'status409'
  /** Handle the request (a PUT takes effect), send headers and part of the body, then reset the connection. */
  | 'reset'
  /** Handle the request, announce the full Content-Length but send only half the body, then close cleanly (FIN). */
  | 'shortBody'
  /** Wait delayMs (default 30 s) first; handle the request only if the client is still connected. */
  | 'slow'
  /** Handle the request (a PUT takes effect), then drop the connection without any response. */
  | 'lostResponse'
  /** Handle the request, then send 200 with its JSON cut in half. */
  | 'malformedJson';

export interface FaultMatch {
  method?: string;
  /** A string matches paths that start with it; a RegExp is tested against the path (no query). */
  path?: RegExp | string;
  /** Matches /api/photo(s)/{id} and the bytes of that photo. */
  photoId?: number;
}

export interface FaultRule {
  kind: FaultKind;
  match?: FaultMatch;
  /** How many matching requests it applies to; default 1, Infinity allowed. */
  times?: number;
  /** Chance (0..1) of applying to a matching request; decided by a seeded generator, so runs repeat. */
  probability?: number;
  retryAfterSeconds?: number;
  delayMs?: number;
}

export interface InjectedFault {
  kind: FaultKind;
  path: string;
}

/** What the server knows about a request when it asks whether a fault applies. */
export interface FaultRequest {
  method: string;
  path: string;
  photoId?: number;
}

export interface FaultController {
  add(rule: FaultRule): void;
  clear(): void;
  /** Faults injected so far, oldest first. */
  injected(): InjectedFault[];
}

interface ActiveRule {
  rule: FaultRule;
  remaining: number;
}

export class Faults implements FaultController {
  private rules: ActiveRule[] = [];
  private log: InjectedFault[] = [];
  private readonly random: Random;

  constructor(seed: number) {
    this.random = seededRandom(seed * 31 + 5);
  }

  add(rule: FaultRule): void {
    const times = rule.times ?? 1;
    if (!(times > 0)) throw new Error('FaultRule.times must be positive');
    this.rules.push({ rule, remaining: times });
  }

  clear(): void {
    this.rules = [];
  }

  injected(): InjectedFault[] {
    return [...this.log];
  }

  /** Returns the rule to apply to this request, if any, and uses it up once. */
  take(request: FaultRequest): FaultRule | undefined {
    for (const active of this.rules) {
      if (active.remaining <= 0 || !matches(active.rule.match, request)) continue;
      if (active.rule.probability !== undefined && this.random() >= active.rule.probability) continue;
      active.remaining--;
      this.log.push({ kind: active.rule.kind, path: request.path });
      return active.rule;
    }
    return undefined;
  }
}

function matches(match: FaultMatch | undefined, request: FaultRequest): boolean {
  if (!match) return true;
  if (match.method && match.method.toUpperCase() !== request.method) return false;
  if (match.photoId !== undefined && match.photoId !== request.photoId) return false;
  if (typeof match.path === 'string' && !request.path.startsWith(match.path)) return false;
  if (match.path instanceof RegExp) {
    match.path.lastIndex = 0; // a /g or /y RegExp keeps state between tests
    if (!match.path.test(request.path)) return false;
  }
  return true;
}
