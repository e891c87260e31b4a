/**
 * Partial-depth decodes and speculative decoding on llama.cpp (src/engine/speculative/), on the shipped demo reasoner
 * and on stories260K (a real trained llama2.c model):
 *
 * - a decode stopped after block K through the eval callback really stops there (ggml asks about no later node), and
 *   once its positions are removed, a full decode of them equals a clean run bit for bit;
 * - greedy self-speculative decoding (drafts from the first blocks and a head, verified in one batched decode) and
 *   draft-model decoding (the truncated GGUF of the same blocks and head) give plain greedy decoding's tokens;
 * - where a batched verification's logits could flip an argmax (they equal one-token logits only to float rounding),
 *   the flip is found and explained: it may only happen at a near tie of plain decoding's two best tokens;
 * - the contract of generate holds: stop tokens inside an accepted run, hidden states of tapped tokens, a consumer
 *   that stops in the middle of a verification's tokens;
 * - layer exit keeps the KV cache consistent: its partial-depth tail is decoded again before any full decode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  draftModelPredictor,
  layerExitDecoding,
  LlamaContext,
  LlamaModel,
  selfDraftPredictor,
  speculativeDecoding,
  type LayerHead,
  type PredictorFactory,
} from '../src/engine/index.js';
import { convertToGguf } from '../src/import/convert.js';
import { writeDraftModel } from '../src/reasoning/heads/draft-gguf.js';
import { OpenHeads } from '../src/reasoning/heads/exit.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { loadBenchmark } from '../src/tasks/registry.js';
import { packageRoot } from '../src/util/paths.js';
import { EXACT, firstDifference, greedy, writeLensHeads } from './helpers/heads.js';

const DEMO = resolve(packageRoot(), 'models', 'lynx-demo', 'model.gguf');
const STORIES = resolve(packageRoot(), '..', 'shared', 'models', 'stories260K');
/** A near tie: plain decoding's two best tokens closer than this in log-probability. */
const NEAR_TIE = 1e-3;

let dir: string;
let demo: LlamaModel;
let demoHeads: OpenHeads;
let prompts: number[][];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-speculative-'));
  demo = LlamaModel.load(DEMO);
  writeLensHeads(DEMO, [2, 3, 4], join(dir, 'demo-heads'));
  demoHeads = OpenHeads.open(join(dir, 'demo-heads'), DEMO, { threads: 1 });
  prompts = loadBenchmark('demo:test', { limit: 6 }).map((p) => problemPromptTokens(demo, p));
});

afterAll(() => {
  demoHeads?.dispose();
  demo?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('partial-depth decodes', () => {
  it('stop after block K, and a full decode after removing their positions equals a clean run', async () => {
    const run = async (probeFirst: boolean) => {
      const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 512, nSeqMax: 1, threads: 1 });
      try {
        const seq = ctx.createSequence();
        await seq.append(prompts[0]!);
        const at = seq.length;
        if (probeFirst) {
          for (let i = 0; i < 3; i++) {
            const r = await seq.probe([40 + i], at + i, { layers: [2] });
            expect(r.exitedAt).toBe(2);
            expect(r.stopHeld).toBe(true);
            expect(r.hidden!.get(2)!.length).toBe(demo.info.nEmbd);
          }
          seq.dropFrom(at);
          expect(ctx.stats.partialDecodes).toBe(3);
          expect(ctx.stats.partialStopsIgnored).toBe(0);
        }
        return (await seq.extend([40, 41, 42])).rows.slice();
      } finally {
        ctx.dispose();
      }
    };
    const clean = await run(false);
    const after = await run(true);
    expect(Array.from(after)).toEqual(Array.from(clean));
  });

  it('run to full depth when no layer decides to stop, and return the logits', async () => {
    const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 512, nSeqMax: 2, threads: 1 });
    try {
      const a = ctx.createSequence();
      await a.append(prompts[0]!);
      const r = await a.probe([40], a.length, { layers: [1, 3], decide: () => false });
      expect(r.exitedAt).toBeNull();
      const b = ctx.createSequence();
      await b.append(prompts[0]!);
      const full = (await b.extend([40])).rows;
      let m = 0;
      for (let i = 0; i < full.length; i++) m = Math.max(m, Math.abs(full[i]! - r.rows![i]!));
      // Two sequences of one cache: equal up to the cross-sequence rounding of the attention sums.
      expect(m).toBeLessThan(0.05);
    } finally {
      ctx.dispose();
    }
  });
});

describe('greedy self-speculative decoding is plain greedy decoding', () => {
  it('on the demo reasoner: every head, several draft lengths; any difference is at a near tie', async () => {
    let compared = 0;
    let flips = 0;
    let accepted = 0;
    for (const [i, prompt] of prompts.slice(0, 4).entries()) {
      const plain = await greedy(demo, prompt, 96);
      for (const [layer, draftMax] of [[2, 3], [3, 5], [4, 8]] as const) {
        const mode = speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(layer) }), draftMax });
        const spec = await greedy(demo, prompt, 96, mode);
        compared++;
        accepted += mode.stats.accepted;
        expect(mode.stats.partialStopsIgnored).toBe(0);
        const d = firstDifference(plain.tokens, spec.tokens);
        if (d < plain.tokens.length || spec.tokens.length !== plain.tokens.length) {
          // Explained only as a near tie of plain decoding at that step.
          flips++;
          expect(plain.margins[d], `prompt ${i}, head ${layer}: differs at ${d}`).toBeLessThan(NEAR_TIE);
        }
      }
    }
    expect(accepted).toBeGreaterThan(100); // the drafts were used, not all rejected
    // The bound: at most one run in twelve differs at all (none did when this was written).
    expect(flips).toBeLessThanOrEqual(Math.floor(compared / 12));
  });

  it('from a draft vocabulary (the head over part of the vocabulary): every draft inside it, plain greedy still', async () => {
    const partial = OpenHeads.open(join(dir, 'demo-heads'), DEMO, { threads: 1, draftVocab: 200 });
    try {
      const head = partial.head(3);
      expect(head.tokens).toHaveLength(200);
      const inside = new Set(head.tokens);
      const drafted: number[] = [];
      const base = selfDraftPredictor({ head });
      const watching: PredictorFactory = (target) => {
        const p = base(target);
        return { name: p.name, counters: p.counters, dispose: () => p.dispose(), predict: async (r) => {
          const d = await p.predict(r);
          drafted.push(...d.map((x) => x.token));
          return d;
        } };
      };
      let accepted = 0;
      let acceptedWhole = 0;
      for (const prompt of prompts.slice(0, 3)) {
        const plain = await greedy(demo, prompt, 80);
        const mode = speculativeDecoding({ predictor: watching, draftMax: 4 });
        const spec = await greedy(demo, prompt, 80, mode);
        expect(spec.tokens).toEqual(plain.tokens);
        accepted += mode.stats.accepted;
        const whole = speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(3) }), draftMax: 4 });
        await greedy(demo, prompt, 80, whole);
        acceptedWhole += whole.stats.accepted;
      }
      expect(drafted.length).toBeGreaterThan(50);
      expect(drafted.every((t) => inside.has(t))).toBe(true);
      // Tokens outside it are never drafted, so never accepted from a draft; the rest drafts as the whole head does.
      expect(accepted).toBeGreaterThan(0);
      expect(accepted).toBeLessThanOrEqual(acceptedWhole);
      // Layer exit emits a head's own tokens and refuses a partial one.
      expect(() => layerExitDecoding({ heads: [head], thresholds: [0.5] })).toThrow(/whole vocabulary/);
    } finally {
      partial.dispose();
    }
  });

  it('on stories260K, with the model-output head on blocks 2 and 3', async () => {
    const path = join(dir, 'stories260K.gguf');
    convertToGguf(join(STORIES, 'stories260K.bin'), path, { tokenizer: join(STORIES, 'tok512.bin'), progress: false });
    writeLensHeads(path, [2, 3], join(dir, 'stories-heads'));
    const model = LlamaModel.load(path);
    const heads = OpenHeads.open(join(dir, 'stories-heads'), path, { threads: 1 });
    try {
      const storyPrompts = ['Once upon a time', 'The little dog', 'Lily and Tom went to the park'].map((t) => [1, ...model.tokenize(t)]);
      let flips = 0;
      for (const prompt of storyPrompts) {
        const plain = await greedy(model, prompt, 128);
        for (const layer of [2, 3]) {
          const mode = speculativeDecoding({ predictor: selfDraftPredictor({ head: heads.head(layer) }), draftMax: 4 });
          const spec = await greedy(model, prompt, 128, mode);
          expect(mode.stats.drafted).toBeGreaterThan(0);
          const d = firstDifference(plain.tokens, spec.tokens);
          if (d < plain.tokens.length) {
            flips++;
            expect(plain.margins[d]).toBeLessThan(NEAR_TIE);
          } else expect(spec.tokens).toEqual(plain.tokens);
        }
      }
      expect(flips).toBeLessThanOrEqual(1);
    } finally {
      heads.dispose();
      model.dispose();
    }
  });

  it('the truncated draft GGUF of a head drafts the same tokens as self-drafting from it, and both keep plain greedy', async () => {
    const out = join(dir, 'demo-draft-3.gguf');
    writeDraftModel(DEMO, demoHeads.heads, 3, out);
    const draft = LlamaModel.load(out);
    expect(draft.info.nLayer).toBe(4);
    const ctx = new LlamaContext(draft, { ...EXACT, nCtx: 1024, nSeqMax: 1, threads: 1 });
    try {
      const prompt = prompts[1]!;
      const plain = await greedy(demo, prompt, 64);
      const self = speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(3) }), draftMax: 4 });
      const viaModel = speculativeDecoding({ predictor: draftModelPredictor({ context: ctx }), draftMax: 4 });
      const a = await greedy(demo, prompt, 64, self);
      const b = await greedy(demo, prompt, 64, viaModel);
      expect(a.tokens).toEqual(plain.tokens);
      expect(b.tokens).toEqual(plain.tokens);
      // Same blocks, same head: the same drafts, so the same acceptance (to float rounding of the head's kernels).
      expect(Math.abs(self.stats.accepted - viaModel.stats.accepted)).toBeLessThanOrEqual(2);
      expect(viaModel.stats.drafted).toBeGreaterThan(0);
    } finally {
      ctx.dispose();
      draft.dispose();
    }
  });
});

describe('the generate contract under speculative decoding', () => {
  it('a stop token inside an accepted run ends generation there, outside the sequence', async () => {
    const prompt = prompts[2]!;
    const plain = await greedy(demo, prompt, 48);
    const stopAt = plain.tokens[20]!;
    const first = plain.tokens.indexOf(stopAt);
    const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 1024, nSeqMax: 1, threads: 1 });
    try {
      const seq = ctx.createSequence();
      await seq.append(prompt);
      const mode = speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(4) }), draftMax: 6 });
      const got: number[] = [];
      let stopped: number | undefined;
      for await (const t of seq.generate({ maxTokens: 48, decoding: mode, stop: { tokens: [stopAt] } })) {
        if (t.stopped) stopped = t.token;
        else got.push(t.token);
      }
      expect(stopped).toBe(stopAt);
      expect(got).toEqual(plain.tokens.slice(0, first));
      expect(seq.length).toBe(prompt.length + first);
    } finally {
      ctx.dispose();
    }
  });

  it('tapped tokens carry the hidden states plain decoding gives them; tapWhen is asked once per token, in order', async () => {
    const prompt = prompts[3]!;
    const run = async (speculate: boolean) => {
      const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 1024, nSeqMax: 1, threads: 1 });
      try {
        const seq = ctx.createSequence();
        await seq.append(prompt);
        const asked: number[] = [];
        const hidden = new Map<number, Float32Array>();
        const mode = speculate ? speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(4) }), draftMax: 5 }) : undefined;
        for await (const t of seq.generate({ maxTokens: 40, decoding: mode, tapLayers: [1, 5], tapWhen: (token) => (asked.push(token), asked.length % 3 === 0) })) {
          if (t.hidden) hidden.set(t.index, t.hidden.get(1)!);
        }
        return { asked, hidden };
      } finally {
        ctx.dispose();
      }
    };
    const plain = await run(false);
    const spec = await run(true);
    expect(spec.asked).toEqual(plain.asked);
    expect([...spec.hidden.keys()]).toEqual([...plain.hidden.keys()]);
    for (const [i, h] of plain.hidden) {
      const s = spec.hidden.get(i)!;
      let m = 0;
      let scale = 0;
      for (let j = 0; j < h.length; j++) {
        m = Math.max(m, Math.abs(h[j]! - s[j]!));
        scale = Math.max(scale, Math.abs(h[j]!));
      }
      // A batched decode's rows equal one-token ones to float rounding.
      expect(m / scale).toBeLessThan(1e-4);
    }
  });

  it('a consumer that stops between the tokens of one verification leaves the sequence holding exactly what it saw', async () => {
    const prompt = prompts[0]!;
    const plain = await greedy(demo, prompt, 40);
    const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 1024, nSeqMax: 1, threads: 1 });
    try {
      const seq = ctx.createSequence();
      await seq.append(prompt);
      const mode = speculativeDecoding({ predictor: selfDraftPredictor({ head: demoHeads.head(4) }), draftMax: 8 });
      const seen: number[] = [];
      for await (const t of seq.generate({ maxTokens: 40, decoding: mode })) {
        seen.push(t.token);
        if (seen.length === 7) break;
      }
      expect(seq.length).toBe(prompt.length + 7);
      expect(seq.tokens.slice(prompt.length)).toEqual(plain.tokens.slice(0, 7));
      // Plain decoding goes on from there as if it had been plain all along.
      const rest: number[] = [];
      for await (const t of seq.generate({ maxTokens: 10 })) rest.push(t.token);
      expect(rest).toEqual(plain.tokens.slice(7, 17));
    } finally {
      ctx.dispose();
    }
  });
});

describe('layer exit', () => {
  it('with the model\'s own head after the last block, it is plain greedy decoding, through the partial tail and its catch-ups', async () => {
    // The last block's hidden state through the model's norm and output matrix is the full model: every token exits there.
    const lastHeads = join(dir, 'last-head');
    writeLensHeads(DEMO, [4], lastHeads);
    const own: LayerHead = { layer: demo.info.nLayer - 1, logits: (h) => demoHeads.forward.logits(4, h) };
    const mode = layerExitDecoding({ heads: [own], thresholds: [Infinity], maxTail: 16 });
    const prompt = prompts[4]!;
    const plain = await greedy(demo, prompt, 80);
    const exited = await greedy(demo, prompt, 80, mode);
    const d = firstDifference(plain.tokens, exited.tokens);
    if (d < plain.tokens.length) expect(plain.margins[d]).toBeLessThan(NEAR_TIE);
    expect(mode.stats.exits[demo.info.nLayer - 1]).toBeGreaterThan(40);
    expect(mode.stats.fullDecodes).toBeGreaterThan(2); // the tail was caught up (every 16 tokens)
  });

  it('labels the tokens a head chose, and the sequence it leaves decodes on like a clean one', async () => {
    const mode = layerExitDecoding({ heads: [demoHeads.head(3)], thresholds: [0.5] });
    const prompt = prompts[5]!;
    const ctx = new LlamaContext(demo, { ...EXACT, nCtx: 1024, nSeqMax: 2, threads: 1 });
    try {
      const seq = ctx.createSequence();
      await seq.append(prompt);
      let labelled = 0;
      for await (const t of seq.generate({ maxTokens: 60, decoding: mode })) if (t.exitLayer === 3) labelled++;
      expect(labelled).toBe(mode.stats.exits[3]);
      expect(labelled).toBeGreaterThan(0);
      expect(seq.partialTail).not.toBeNull();
      // The next full decode re-decodes the tail: its logits are those of a sequence that held these tokens all along.
      const tokens = seq.tokens;
      const next = (await seq.extend([tokens[tokens.length - 1]!])).rows.slice();
      expect(seq.partialTail).toBeNull();
      const clean = ctx.createSequence();
      await clean.append(tokens);
      const ref = (await clean.extend([tokens[tokens.length - 1]!])).rows;
      let m = 0;
      for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]! - next[i]!));
      expect(m).toBeLessThan(0.05);
    } finally {
      ctx.dispose();
    }
  });
});
