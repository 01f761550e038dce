/**
 * The built CLI (dist/src/cli.js) as a child process, the way a scheduler runs it: a clean environment
 * (PATH, HOME and what the test passes; JSON logs), output captured, killed if it outlives its bound.
 * `npm test` builds first; a suite run on its own can call buildIfStale().
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const MARKER = CLI;

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

export function requireBuiltCli(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p .\` (npm test builds first)`);
}

export interface CliProcess {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved as they arrived. */
  output(): string;
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits until the output matches, or fails after timeoutMs with the output so far. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** JSON log lines (stdout lines that parse as objects). */
  jsonLines(): Array<Record<string, unknown>>;
}

export function startCli(args: string[], env: Record<string, string | undefined>, cwd = ROOT): CliProcess {
  requireBuiltCli();
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    // A clean environment: only what the test passes, plus PATH/HOME so node runs normally.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let all = '';
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const onData = (isOut: boolean) => (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    all += s;
    if (isOut) out += s;
    else err += s;
    for (const w of waiters) w();
  };
  child.stdout?.on('data', onData(true));
  child.stderr?.on('data', onData(false));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      // Let the pipes drain before anyone reads the output.
      setTimeout(() => {
        resolve({ code, signal });
        for (const w of waiters) w();
      }, 50);
    }),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    output: () => all,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 15_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(all)) {
            cleanup();
            resolve();
          } else if (done) {
            cleanup();
            reject(new Error(`process exited before output matched ${pattern}; output:\n${all}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${all}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    jsonLines() {
      return out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        });
    },
  };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived. */
  output: string;
}

/** Runs the CLI to completion (killed after timeoutMs), returning its exit code and output. */
export async function runCli(args: string[], env: Record<string, string | undefined>, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const p = startCli(args, env, opts.cwd);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, stdout: p.stdout(), stderr: p.stderr(), output: p.output() };
}
