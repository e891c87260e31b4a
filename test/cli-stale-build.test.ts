import { describe, it, expect } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { staleBuildWarning } from '../src/cli/stale-build.js';

/** A checkout with dist/cli/main.js built at `builtAt` and src files edited at the given times (seconds). */
function checkout(builtAt: number, sources: Record<string, number>): string {
  const root = mkdtempSync(join(tmpdir(), 'lynx-stale-'));
  mkdirSync(join(root, 'dist', 'cli'), { recursive: true });
  writeFileSync(join(root, 'dist', 'cli', 'main.js'), '');
  utimesSync(join(root, 'dist', 'cli', 'main.js'), builtAt, builtAt);
  for (const [file, at] of Object.entries(sources)) {
    const path = join(root, 'src', file);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '');
    utimesSync(path, at, at);
  }
  return root;
}

describe('stale build warning', () => {
  it('names the newest source file edited after the build', () => {
    const root = checkout(1000, { 'cli/main.ts': 900, 'engine/sampler.ts': 1200, 'engine/context.ts': 1100, 'notes.md': 5000 });
    try {
      expect(staleBuildWarning(root)).toMatch(/^src\/engine\/sampler\.ts is newer than the build in dist\/: run `npm run build`/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('says nothing when the build is newer than every source, or when there is no src/ (an installed package)', () => {
    const fresh = checkout(2000, { 'cli/main.ts': 900, 'engine/sampler.ts': 1999 });
    const installed = checkout(1000, {});
    try {
      expect(staleBuildWarning(fresh)).toBeUndefined();
      expect(staleBuildWarning(installed)).toBeUndefined();
    } finally {
      rmSync(fresh, { recursive: true, force: true });
      rmSync(installed, { recursive: true, force: true });
    }
  });
});
