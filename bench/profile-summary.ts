/**
 * Where the time goes, from a V8 CPU profile (node --cpu-prof): the functions with the most self time, and
 * the same time grouped by where the code lives (our src/, each npm package, Node's internals, GC, idle).
 *
 *   node dist/bench/profile-summary.js <file.cpuprofile> [top]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function summarizeProfile(file: string, top = 20): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // Each sample's time delta is the time since the previous sample: charge it to the function on top.
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const byFunction = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const where = place(frame.url);
    const name = `${frame.functionName || '(anonymous)'} ${where === frame.functionName ? '' : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`}`.trim();
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byPlace.set(where || frame.functionName, (byPlace.get(where || frame.functionName) ?? 0) + us);
    total += us;
  }
  const busy = total - (byPlace.get('(idle)') ?? 0);
  const line = (name: string, us: number) =>
    `  ${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)}% ${((100 * us) / Math.max(busy, 1)).toFixed(1).padStart(5)}% busy  ${name}`;
  const sorted = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return [
    `  total ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy (not idle)`,
    '  by place:',
    ...sorted(byPlace, 12).map(([k, v]) => line(k, v)),
    `  top ${top} functions by self time:`,
    ...sorted(byFunction, top).map(([k, v]) => line(k, v)),
  ].join('\n');
}

/** The package or area a script belongs to: "pg", "knex", "src", "node:internal", or a V8 pseudo-frame. */
function place(url: string): string {
  if (!url) return '';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node:internal';
  const ours = /\/dist\/(src|bench)\//.exec(url);
  if (ours) return ours[1]!;
  return url;
}

function shortUrl(url: string): string {
  return url.replace(/^.*\/node_modules\//, '').replace(/^.*\/dist\//, '').replace(/^file:\/\//, '');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]\n');
    process.exitCode = 2;
  } else {
    process.stdout.write(`${summarizeProfile(file, Number(process.argv[3] ?? 25))}\n`);
  }
}
