/** The human summary printed at the end of a run (and the demo). Never contains tokens: it holds only counts and reasons. */
import type { RunSummary } from './sync.js';

export function formatSummary(summary: RunSummary, opts: { maxProblems?: number } = {}): string {
  const c = summary.counts;
  const seconds = (summary.durationMs / 1000).toFixed(1);
  const rows: Array<[string, string | number]> = [
    ['found', c.found],
    ...(summary.dryRun
      ? ([['would store', c.wouldStore]] as Array<[string, number]>)
      : ([
          ['stored', c.stored],
          ['acknowledged', `${c.acknowledged}${summary.reconciled ? ` (${summary.reconciled} from earlier runs)` : ''}`],
        ] as Array<[string, string | number]>)),
    ['already stored', c.alreadyStored],
    ['superseded', c.superseded],
    ['unmatched', c.unmatched],
    ['on hold', c.held],
    ['failed', c.failed],
    ['left for next run', c.left],
    ['time', `${seconds} s`],
  ];
  const lines = [
    summary.dryRun ? `Dry run ${summary.runId} (nothing written, nothing acknowledged)` : `Run ${summary.runId}${summary.stopped ? ' (stopped early)' : ''}`,
    ...rows.map(([label, value]) => `  ${label.padEnd(18)} ${value}`),
  ];
  const max = opts.maxProblems ?? 20;
  if (summary.problems.length) {
    lines.push('', summary.dryRun ? 'What a real run would do, photo by photo:' : 'Photos that need a look:');
    for (const p of summary.problems.slice(0, max)) lines.push(`  photo ${p.photoId}: ${p.kind}${p.code ? ` [${p.code}]` : ''} ${p.reason ?? ''}`.trimEnd());
    if (summary.problems.length > max) lines.push(`  ... and ${summary.problems.length - max} more (see the log, or \`cloudcard-sync status\`)`);
  }
  return lines.join('\n');
}
