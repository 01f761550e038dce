/**
 * The compiled CLI (dist/src/cli.js) as a child process, for the crash and hardening suites: built on demand,
 * run with a clean environment (only PATH and what the test passes), killed if it outlives its timeout.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/src/cli.js');
const MARKER = path.join(ROOT, 'dist/src/failpoints.js');

/** Builds dist/ unless it is newer than every source file. */
export function buildIfStale(): void {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
    }, 0);
  let built = 0;
  try {
    built = statSync(MARKER).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newest(path.join(ROOT, 'src'))) return;
  // tsc emits even when some file has a type error elsewhere in the tree; type-checking is not these suites' job.
  const tsc = spawnSync('npx', ['tsc', '-p', '.'], { cwd: ROOT, encoding: 'utf8' });
  if (tsc.status !== 0) console.log(`tsc reported errors (dist/ was still emitted):\n${tsc.stdout}`);
  if (statSync(MARKER).mtimeMs <= built) throw new Error('build failed: dist/ was not updated');
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, timeoutMs = 20_000): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, LOG_FORMAT: 'json', LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
