/** Rows as the drivers hand them back, made uniform. */

/** Oracle may return upper-case keys (unquoted aliases, catalog views); the job's columns are lower-case everywhere. */
export function lowerKeys(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k.toLowerCase(), v]));
}
