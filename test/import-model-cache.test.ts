/**
 * `--model FOLDER`: a Hugging Face folder is converted once into the cache, keyed by its content.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { folderKey, resolveModel } from '../src/import/model-cache.js';
import { buildTinyHfModel } from './helpers/tiny-models.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-model-cache-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveModel', () => {
  it('converts a folder once, reuses the entry, and converts again when the folder changes', () => {
    const folder = buildTinyHfModel(join(dir, 'R1-tiny'), { arch: 'qwen2', hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 32 });
    const cache = join(dir, 'cache');
    const converted: string[] = [];
    const opts = { cache, type: 'bf16' as const, progress: false, onConvert: (_src: string, out: string) => converted.push(out) };

    const first = resolveModel(folder, opts);
    expect(converted).toEqual([first]);
    expect(first.startsWith(cache)).toBe(true);
    expect(first).toMatch(/R1-tiny-[0-9a-f]{16}\.gguf$/);
    const g = GgufFile.open(first);
    expect(g.get('general.architecture')).toBe('qwen2');
    g.close();
    const mtime = statSync(first).mtimeMs;

    // Same content: the cached file, not converted again.
    expect(resolveModel(folder, opts)).toBe(first);
    expect(converted.length).toBe(1);
    expect(statSync(first).mtimeMs).toBe(mtime);

    // Another tensor type is another entry.
    const f16 = resolveModel(folder, { ...opts, type: 'f16' });
    expect(f16).not.toBe(first);

    // An edited config (or tokenizer, template, weights) is another entry.
    const path = join(folder, 'config.json');
    const config = JSON.parse(readFileSync(path, 'utf8'));
    config.rms_norm_eps = 1e-5;
    writeFileSync(path, JSON.stringify(config));
    const edited = resolveModel(folder, opts);
    expect(edited).not.toBe(first);
    expect(converted.length).toBe(3);
    const g2 = GgufFile.open(edited);
    expect(g2.get('qwen2.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-5));
    g2.close();
  });

  it('returns a GGUF path as it is; the key follows the checkpoint and is stable', () => {
    const a = buildTinyHfModel(join(dir, 'a'), { arch: 'llama', hidden: 32, layers: 1, heads: 2, kvHeads: 2, intermediate: 32, seed: 3 });
    const c = buildTinyHfModel(join(dir, 'c'), { arch: 'llama', hidden: 32, layers: 1, heads: 2, kvHeads: 2, intermediate: 48, seed: 3 });
    expect(folderKey(a)).toBe(folderKey(a));
    expect(folderKey(a)).not.toBe(folderKey(c));
    expect(folderKey(a, 'bf16')).not.toBe(folderKey(a, 'f16'));
    const gguf = resolveModel(a, { cache: join(dir, 'cache2'), type: 'bf16', progress: false });
    expect(resolveModel(gguf)).toBe(gguf);
    expect(() => resolveModel(join(dir, 'nope'))).toThrow(/not found/);
  });
});
