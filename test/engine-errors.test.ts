import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  ContextFullError,
  DisposedError,
  LlamaContext,
  LlamaModel,
  ModelLoadError,
  loadLlama,
} from '../src/engine/index.js';
import { compareDefaults } from '../src/native/abi.js';
import { buildTinyGguf } from './helpers/engine-models.js';

let dir: string;
let path: string;
let model: LlamaModel;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-errors-'));
  path = buildTinyGguf(join(dir, 'tiny.gguf'), { arch: 'qwen2', type: 'q8_0' });
  model = LlamaModel.load(path);
});

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('bad input gives clear typed errors, never a crash', () => {
  it('missing file', () => {
    expect(() => LlamaModel.load(join(dir, 'absent.gguf'))).toThrow(ModelLoadError);
    expect(() => LlamaModel.load(join(dir, 'absent.gguf'))).toThrow(/not found/);
  });

  it('wrong magic', () => {
    const p = join(dir, 'not-gguf.gguf');
    writeFileSync(p, Buffer.alloc(1024, 7));
    expect(() => LlamaModel.load(p)).toThrow(/not a GGUF file/);
  });

  it('truncated file (header cut and tensor data cut)', () => {
    const bytes = readFileSync(path);
    const head = join(dir, 'head.gguf');
    writeFileSync(head, bytes.subarray(0, 2000));
    expect(() => LlamaModel.load(head)).toThrow(ModelLoadError);
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 4096));
    expect(() => LlamaModel.load(cut)).toThrow(ModelLoadError);
  });

  it('a context too small for the request', async () => {
    const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, nBatch: 64 });
    const seq = ctx.createSequence();
    const long = Array.from({ length: 300 }, (_, i) => 65 + (i % 26));
    await expect(seq.append(long)).rejects.toThrow(ContextFullError);
    // The sequence is still usable after the refusal.
    await expect(seq.append(model.tokenize('fine'))).resolves.toBeDefined();
    expect(() => ctx.createSequence()).toThrow(ContextFullError);
    ctx.dispose();
  });

  it('a disposed sequence, context or model', async () => {
    const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 2, nBatch: 64 });
    const seq = ctx.createSequence();
    await seq.append(model.tokenize('hello'));
    seq.dispose();
    await expect(seq.append([1])).rejects.toThrow(DisposedError);
    expect(() => seq.fork()).toThrow(DisposedError);
    expect(() => seq.truncate(0)).toThrow(DisposedError);
    const other = ctx.createSequence();
    ctx.dispose();
    await expect(other.append([1])).rejects.toThrow(DisposedError);
    expect(() => ctx.createSequence()).toThrow(DisposedError);
  });

  it('the ABI check compares every declared field with the library defaults', () => {
    const llama = loadLlama();
    const defaults = llama.api.llama_context_default_params().p;
    expect(compareDefaults('ctx', defaults, { n_ctx: 512, kv_unified: false })).toEqual([]);
    expect(compareDefaults('ctx', defaults, { n_ctx: 1024 })).toEqual(['ctx.n_ctx: expected 1024, library gave 512']);
  });
});

describe('lynx generate', () => {
  it('prints one JSON object with the generated tokens and text', () => {
    const cli = join(process.cwd(), 'src', 'cli', 'main.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'generate', '--model', path, '--prompt', 'Hello', '--max-tokens', '8', '--json'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim());
    expect(out.tokens).toHaveLength(8);
    expect(typeof out.text).toBe('string');
    // Greedy decoding through the CLI equals greedy decoding through the API.
    const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, nBatch: 64 });
    const seq = ctx.createSequence();
    return (async () => {
      await seq.append(model.tokenize('Hello'));
      const ids: number[] = [];
      for await (const t of seq.generate({ maxTokens: 8 })) ids.push(t.token);
      expect(out.tokens).toEqual(ids);
      ctx.dispose();
    })();
  });

  it('exits with a clear message for a missing model', () => {
    const cli = join(process.cwd(), 'src', 'cli', 'main.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'generate', '--model', join(dir, 'nope.gguf'), '--prompt', 'x'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/model not found/);
  });
});
