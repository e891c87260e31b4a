/**
 * The layers of src/ (docs/DEVELOPING.md): a folder imports only from folders below it in LAYERS. A cycle or an upward
 * import is how a server, a second model or a remote engine stops being pluggable, so it fails the build here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', 'src');

/** Top to bottom. Sub-folders named here are layers of their own; the rest belong to their top folder. */
export const LAYERS = [
  'cli',
  'server',
  'demo',
  'pipeline',
  'report',
  'eval',
  'reasoning/compose',
  'reasoning/heads',
  'reasoning/lynx',
  'reasoning/peers',
  'reasoning/calibration',
  'reasoning',
  'tasks',
  'backends',
  'training',
  'graph',
  'engine',
  'reference',
  'import',
  'formats',
  'native',
  'util',
] as const;

function layerOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  if (rel.length === 1) return '(root)';
  const two = `${rel[0]}/${rel[1]}`;
  return (LAYERS as readonly string[]).includes(two) ? two : rel[0]!;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => m[1]!);
}

const rank = (layer: string) => (LAYERS as readonly string[]).indexOf(layer);

/** Does `spec`, imported by `file`, point at a layer above the file's? (src/index.ts, the public API, may import all.) */
function isUpward(file: string, spec: string): boolean {
  const from = layerOf(file);
  if (from === '(root)') return false;
  const to = layerOf(resolve(dirname(file), spec));
  return to !== from && rank(to) < rank(from);
}

describe('layers', () => {
  const files = sources(SRC);

  it('every folder of src/ is a known layer', () => {
    const unknown = [...new Set(files.map(layerOf))].filter((l) => l !== '(root)' && !(LAYERS as readonly string[]).includes(l));
    expect(unknown).toEqual([]);
  });

  it('no folder imports from a folder above it', () => {
    const upward = files.flatMap((file) =>
      importsOf(file)
        .filter((spec) => isUpward(file, spec))
        .map((spec) => `${relative(SRC, file)} (${layerOf(file)}) imports ${spec} (${layerOf(resolve(dirname(file), spec))})`),
    );
    expect(upward).toEqual([]);
  });

  it('the check sees a violation when there is one', () => {
    // Guard against a check that passes because it reads nothing or ranks nothing.
    expect(files.length).toBeGreaterThan(50);
    expect(files.filter((f) => importsOf(f).length > 0).length).toBeGreaterThan(50);
    expect(isUpward(join(SRC, 'engine', 'model.ts'), '../reasoning/rollout.js')).toBe(true);
    expect(isUpward(join(SRC, 'reasoning', 'rollout.ts'), './lynx/online.js')).toBe(true);
    expect(isUpward(join(SRC, 'reasoning', 'lynx', 'online.ts'), '../rollout.js')).toBe(false);
    expect(isUpward(join(SRC, 'index.ts'), './cli/main.js')).toBe(false);
  });
});
