/**
 * In a source checkout, `lynx` runs the compiled `dist/`: after an edit under `src/` without `npm run build` it would
 * run the old code without a word. This finds that case so the command can say so.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** A warning when a `.ts` file under `<root>/src` is newer than `<root>/dist/cli/main.js`; undefined otherwise. */
export function staleBuildWarning(root: string): string | undefined {
  const built = join(root, 'dist', 'cli', 'main.js');
  const src = join(root, 'src');
  if (!existsSync(built) || !existsSync(src)) return undefined; // an installed package ships no src/
  const builtAt = statSync(built).mtimeMs;
  const newer = newestTs(src);
  if (!newer || newer.mtimeMs <= builtAt) return undefined;
  return `${relative(root, newer.path)} is newer than the build in dist/: run \`npm run build\` (lynx runs dist/, the old code)`;
}

function newestTs(dir: string): { path: string; mtimeMs: number } | undefined {
  let best: { path: string; mtimeMs: number } | undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const hit = entry.isDirectory() ? newestTs(path) : entry.name.endsWith('.ts') ? { path, mtimeMs: statSync(path).mtimeMs } : undefined;
    if (hit && (!best || hit.mtimeMs > best.mtimeMs)) best = hit;
  }
  return best;
}
