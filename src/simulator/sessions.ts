/**
 * Session tokens, as CloudCard issues them for a persistent access token: random, expiring, revocable.
 */
import { randomBytes } from 'node:crypto';
import type { SessionCounts } from './types.js';

type SessionState = 'active' | 'loggedOut' | 'revoked';

interface Session {
  expiresAt: number;
  state: SessionState;
}

export class Sessions {
  private readonly byToken = new Map<string, Session>();

  constructor(private readonly ttlMs: number) {}

  issue(): { tokenValue: string; expirationDate: string } {
    const tokenValue = randomBytes(24).toString('base64url');
    const expiresAt = Date.now() + this.ttlMs;
    this.byToken.set(tokenValue, { expiresAt, state: 'active' });
    return { tokenValue, expirationDate: new Date(expiresAt).toISOString() };
  }

  isValid(token: string | undefined): boolean {
    if (!token) return false;
    const session = this.byToken.get(token);
    return session !== undefined && session.state === 'active' && session.expiresAt > Date.now();
  }

  /** Returns false if the token was not a valid session (nothing to log out). */
  logout(token: string | undefined): boolean {
    if (!token || !this.isValid(token)) return false;
    const session = this.byToken.get(token);
    if (session) session.state = 'loggedOut';
    return true;
  }

  revokeAll(): void {
    for (const session of this.byToken.values()) if (session.state === 'active') session.state = 'revoked';
  }

  counts(): SessionCounts {
    const now = Date.now();
    let active = 0;
    let loggedOut = 0;
    for (const s of this.byToken.values()) {
      if (s.state === 'loggedOut') loggedOut++;
      else if (s.state === 'active' && s.expiresAt > now) active++;
    }
    return { issued: this.byToken.size, active, loggedOut };
  }
}
