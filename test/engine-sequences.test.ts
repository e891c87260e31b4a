import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
// F32 KV cache and no flash attention: results independent of batch composition (see ContextOptions.kvType).
const EXACT = { kvType: 'f32', flashAttention: false } as const;
import { buildTinyGguf, tinyVocab } from './helpers/engine-models.js';

let dir: string;
let model: LlamaModel;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-engine-'));
  model = LlamaModel.load(buildTinyGguf(join(dir, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32' }));
});

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const PROMPT = 'The quick brown fox jumps over the lazy dog. 12 + 30 = 42';

describe('model', () => {
  it('reports shape, vocabulary, special tokens and chat template from the GGUF', () => {
    const info = model.info;
    expect(info.architecture).toBe('qwen2');
    expect(info.nLayer).toBe(4);
    expect(info.nEmbd).toBe(64);
    expect(info.nHead).toBe(4);
    expect(info.nHeadKv).toBe(2);
    expect(info.nVocab).toBe(tinyVocab().tokens.length);
    expect(info.special.thinkStart).toBeTypeOf('number');
    expect(info.special.thinkEnd).toBeTypeOf('number');
    expect(info.special.eos).toBeTypeOf('number');
    expect(info.chatTemplate).toContain('add_generation_prompt');
  });

  it('tokenizes and detokenizes losslessly, with special tokens parsed', () => {
    const text = 'Hello <think> wörld </think> 3.14';
    const ids = model.tokenize(text);
    expect(ids).toContain(model.info.special.thinkStart);
    expect(ids).toContain(model.info.special.thinkEnd);
    expect(model.detokenize(ids)).toBe(text);
    // Control tokens are only recognised when asked to (user-defined ones such as <think> always are).
    expect(model.tokenize('<｜User｜>', { parseSpecial: true })).toHaveLength(1);
    expect(model.tokenize('<｜User｜>', { parseSpecial: false }).length).toBeGreaterThan(1);
    const pieces = Buffer.concat(ids.map((t) => Buffer.from(model.tokenBytes(t)))).toString('utf8');
    expect(pieces).toBe(text);
  });
});

describe('sequences', () => {
  it('a fork continued with the same tokens gives identical logits to its parent', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 512, nSeqMax: 4, nBatch: 64 });
    const parent = ctx.createSequence();
    await parent.append(model.tokenize(PROMPT));
    const child = parent.fork();
    expect(child.tokens).toEqual(parent.tokens);
    const next = model.tokenize(' and then');
    // The shared prefix is the same KV cells; the new tokens land in different cells, so the attention sums run in a
    // different order: identical up to float rounding (~1e-6), whether decoded one after the other or in one batch.
    const a = await parent.append(next);
    const b = await child.append(next);
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
    parent.truncate(parent.length - next.length);
    child.truncate(child.length - next.length);
    const [a2, b2] = await Promise.all([parent.append(next), child.append(next)]);
    expect(maxAbsDiff(a2.logits, b2.logits)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a2.logits, a.logits)).toBeLessThan(1e-5);
    // The child diverges without disturbing the parent.
    await child.append(model.tokenize(' something else entirely'));
    const c = await parent.append(model.tokenize('!'));
    const ref = ctx.createSequence();
    const r = await ref.append(model.tokenize(PROMPT + ' and then!'));
    expect(maxAbsDiff(c.logits, r.logits)).toBeLessThan(1e-5);
    ctx.dispose();
  });

  it('truncate then replay reproduces the original logits', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 512, nSeqMax: 2, nBatch: 64 });
    const seq = ctx.createSequence();
    const ids = model.tokenize(PROMPT);
    const full = await seq.append(ids);
    seq.truncate(10);
    expect(seq.length).toBe(10);
    expect(seq.lastLogits).toBeUndefined();
    const replay = await seq.append(ids.slice(10));
    expect(maxAbsDiff(full.logits, replay.logits)).toBeLessThan(1e-5);
    ctx.dispose();
  });

  it('a batch of N sequences equals N separate runs within 1e-5', async () => {
    const prompts = ['One two three', 'A completely different prompt here', '7 * 6 = 42', 'Short'];
    const separate: Float32Array[][] = [];
    for (const p of prompts) {
      const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64 });
      const seq = ctx.createSequence();
      await seq.append(model.tokenize(p));
      const logits: Float32Array[] = [];
      for await (const t of seq.generate({ maxTokens: 12, sampler: { temperature: 0 } })) {
        if (t.stopped) break;
        logits.push(seq.lastLogits!.slice());
      }
      separate.push(logits);
      ctx.dispose();
    }
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 1024, nSeqMax: 4, nBatch: 64 });
    const batched = await Promise.all(
      prompts.map(async (p) => {
        const seq = ctx.createSequence();
        await seq.append(model.tokenize(p));
        const logits: Float32Array[] = [];
        for await (const t of seq.generate({ maxTokens: 12, sampler: { temperature: 0 } })) {
          if (t.stopped) break;
          logits.push(seq.lastLogits!.slice());
        }
        return logits;
      }),
    );
    for (let i = 0; i < prompts.length; i++) {
      expect(batched[i]!.length).toBe(separate[i]!.length);
      for (let s = 0; s < separate[i]!.length; s++) expect(maxAbsDiff(batched[i]![s]!, separate[i]![s]!)).toBeLessThan(1e-5);
    }
    // Continuous batching: the four sequences shared decode calls.
    expect(ctx.stats.decodeCalls).toBeLessThan(4 * 13);
    ctx.dispose();
  });

  it('sequences join and leave between steps', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 1024, nSeqMax: 3, nBatch: 64 });
    const a = ctx.createSequence();
    await a.append(model.tokenize('first'));
    const outA: number[] = [];
    const late = (async () => {
      await new Promise((r) => setTimeout(r, 5));
      const b = ctx.createSequence();
      await b.append(model.tokenize('second'));
      const out: number[] = [];
      for await (const t of b.generate({ maxTokens: 5 })) out.push(t.token);
      b.dispose();
      return out;
    })();
    for await (const t of a.generate({ maxTokens: 30 })) outA.push(t.token);
    const outB = await late;
    expect(outA.length).toBe(30);
    expect(outB.length).toBe(5);
    expect(ctx.freeSlots).toBe(2);
    ctx.dispose();
  });

  it('seeded sampling is reproducible and the seed matters', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 512, nSeqMax: 4, nBatch: 64 });
    const run = async (seed: number) => {
      const seq = ctx.createSequence();
      await seq.append(model.tokenize(PROMPT));
      const out: number[] = [];
      for await (const t of seq.generate({ maxTokens: 24, sampler: { temperature: 1.0, topP: 0.95, topK: 40, minP: 0.01, seed } })) out.push(t.token);
      seq.dispose();
      return out;
    };
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    ctx.dispose();
  });

  it('reports log-probabilities consistent with the logits', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64 });
    const seq = ctx.createSequence();
    const { logits } = await seq.append(model.tokenize(PROMPT));
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    let z = 0;
    for (const v of logits) z += Math.exp(v - max);
    for await (const t of seq.generate({ maxTokens: 1, topLogprobs: 3 })) {
      expect(t.topLogprobs).toHaveLength(3);
      expect(t.topLogprobs![0]!.token).toBe(t.token); // greedy picks the most likely
      expect(t.logprob).toBeCloseTo(logits[t.token]! - max - Math.log(z), 4);
      expect(t.topLogprobs![0]!.logprob).toBeGreaterThanOrEqual(t.topLogprobs![1]!.logprob);
    }
    ctx.dispose();
  });

  it('stops at stop strings and end-of-generation tokens without decoding them', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64 });
    const seq = ctx.createSequence();
    await seq.append(model.tokenize(PROMPT));
    const before = seq.length;
    const seen: { token: number; stopped: boolean }[] = [];
    for await (const t of seq.generate({ maxTokens: 10, stop: { tokens: [] } })) seen.push({ token: t.token, stopped: t.stopped });
    const firstToken = seen[0]!.token;
    seq.truncate(before);
    const again: { stopped: boolean }[] = [];
    for await (const t of seq.generate({ maxTokens: 10, stop: { tokens: [firstToken] } })) again.push({ stopped: t.stopped });
    expect(again).toEqual([{ stopped: true }]);
    expect(seq.length).toBe(before);
    ctx.dispose();
  });
});
