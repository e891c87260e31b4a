import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { existsSync } from 'node:fs';

/** Root of the installed package (the folder holding package.json), from src/ or dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(resolve(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** The benchmark data folder: explicit option, else $LYNX_DATA_DIR, else ../shared/data beside the package. */
export function dataDir(explicit?: string): string {
  return resolve(explicit ?? process.env.LYNX_DATA_DIR ?? resolve(packageRoot(), '..', 'shared', 'data'));
}

/** Where converted models and other derived files are cached: $LYNX_CACHE_DIR, else ~/.cache/lynx. */
export function cacheDir(): string {
  return resolve(process.env.LYNX_CACHE_DIR ?? resolve(process.env.HOME ?? '.', '.cache', 'lynx'));
}
