/** Files that ship with the package (example mappings), found whether we run from src/ (tsx, tests) or dist/src/. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the cloudcard-sync package root');
    dir = up;
  }
  return dir;
}
