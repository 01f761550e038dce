/**
 * Tells a lost or refused database connection apart from an error in one statement. A constraint
 * violation concerns one photo; a dead connection concerns the whole run, which should stop taking new
 * photos rather than fail each of them in turn.
 */
const CONNECTION_CODES = new Set([
  // Node sockets
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH',
  // PostgreSQL SQLSTATE: connection exceptions, admin shutdown, cannot connect now, too many connections
  '08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03', '53300',
  // MySQL / MariaDB
  'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_ACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR',
  // SQL Server (tedious)
  'ESOCKET', 'ECONNCLOSED', 'ELOGIN', 'ETIMEOUT',
  // PostgreSQL auth failures
  '28000', '28P01', '3D000',
]);

const CONNECTION_MESSAGES = [
  /Timeout acquiring a connection/i,
  /Connection terminated/i,
  /connection is closed/i,
  /server closed the connection/i,
  /Client has encountered a connection error/i,
  /NJS-(500|501|503|003|040)/, // oracledb thin: connection lost / closed / timeout
  /ORA-(03113|03114|03135|12514|12541|01017)/,
  /DPI-1080/,
  /SQLITE_CANTOPEN|unable to open database/i,
];

export function isConnectionError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && CONNECTION_MESSAGES.some((re) => re.test(message))) return true;
  }
  return false;
}
