/**
 * A progress bar (done / total, rate, ETA) on an interactive terminal; nothing otherwise, since the log
 * lines already tell a non-interactive reader what happens.
 */
import cliProgress from 'cli-progress';
import { terminal } from './log.js';
import type { RunCounts } from './run-history.js';

export interface Progress {
  update(p: { done: number; total: number | undefined; counts: RunCounts }): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr): Progress | undefined {
  if (!stream.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    { stream, format: 'photos {bar} {value}/{total} | {rate}/s | ETA {eta_formatted} | stored {stored}, unmatched {unmatched}, left {left}', hideCursor: true, etaBuffer: 200 },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return {
    update({ done, total, counts }) {
      const payload = { rate: (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1), stored: counts.stored, unmatched: counts.unmatched, left: counts.left };
      if (!running) {
        bar.start(total ?? done, done, payload);
        running = true;
        // A log line (a warning about one photo) takes the bar's line and the bar redraws below it. The bar
        // returns to the cursor position it saved (ESC 7) when it stops, so that position moves down too.
        terminal.beforeLine = () => stream.write('\r\x1b[K');
        terminal.afterLine = () => stream.write('\x1b7');
      }
      if (total !== undefined && total !== bar.getTotal()) bar.setTotal(Math.max(total, done));
      bar.update(done, payload);
    },
    stop() {
      if (running) bar.stop();
      running = false;
      terminal.beforeLine = undefined;
      terminal.afterLine = undefined;
    },
  };
}
