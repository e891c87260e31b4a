/**
 * Big/small composition on two tiny random models through the real engine: each model keeps its KV cache and reads
 * only the other's new tokens, and the trace is token for token what SplitReason's way (resend the whole text to a
 * fresh sequence on every call) gives; one model alone through the composition is exactly that model's own rollout;
 * `lynx eval --small` runs are resumable like every eval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel, type GenerateOptions } from '../src/engine/index.js';
import { LocalGenerator } from '../src/backends/local.js';
import { ComposedGenerator } from '../src/reasoning/compose/composed-generator.js';
import { composeMethod } from '../src/reasoning/compose/compose-method.js';
import type { CompositionPolicy, Turn } from '../src/reasoning/compose/policy.js';
import { tagVerdict } from '../src/reasoning/compose/protocol.js';
import { chunkIsBig, randomSwitchPolicy } from '../src/reasoning/compose/random-switch.js';
import { bigOnlyPolicy, smallOnlyPolicy } from '../src/reasoning/compose/single-model.js';
import { fullRollout, methodEnv, type MethodOutcome, type ReasoningMethod } from '../src/reasoning/method.js';
import { evaluateStep } from '../src/pipeline/evaluate.js';
import { cli } from './helpers/cli.js';
import { buildTinyGguf } from './helpers/engine-models.js';

let dir: string;
let smallModel: LlamaModel;
let bigModel: LlamaModel;
let smallCtx: LlamaContext;
let bigCtx: LlamaContext;
let prompt: number[];
const GREEDY = { temperature: 0 };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-compose-'));
  smallModel = LlamaModel.load(buildTinyGguf(join(dir, 'small.gguf'), { arch: 'qwen2', type: 'f32', nEmbd: 32, nLayer: 2, seed: 99 }));
  bigModel = LlamaModel.load(buildTinyGguf(join(dir, 'big.gguf'), { arch: 'qwen2', type: 'f32', seed: 1234 }));
  // F32 KV cache, no flash attention: logits do not depend on what else shares a batch, so cached and resent
  // prefixes compare token for token.
  const opts = { nCtx: 4096, nSeqMax: 24, nBatch: 256, threads: 1, kvType: 'f32', flashAttention: false } as const;
  smallCtx = new LlamaContext(smallModel, opts);
  bigCtx = new LlamaContext(bigModel, opts);
  prompt = smallModel.tokenize('<｜User｜>What is 2+2?<｜Assistant｜><think>\n');
});

afterAll(() => {
  smallCtx?.dispose();
  bigCtx?.dispose();
  smallModel?.dispose();
  bigModel?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const small = () => new LocalGenerator(smallCtx);
const big = () => new LocalGenerator(bigCtx);

/** Greedy tokens of `model` after `tokens`, from a fresh sequence that reads all of them (SplitReason's way). */
async function resend(ctx: LlamaContext, tokens: readonly number[], opts: Omit<GenerateOptions, 'sampler'>): Promise<number[]> {
  const seq = ctx.createSequence();
  try {
    await seq.append(tokens);
    const out: number[] = [];
    for await (const t of seq.generate({ ...opts, sampler: GREEDY })) {
      if (t.stopped) break;
      out.push(t.token);
    }
    return out;
  } finally {
    seq.dispose();
  }
}

async function composedTrace(policy: CompositionPolicy, maxTokens: number, seed = 5): Promise<{ tokens: number[]; gen: ComposedGenerator; caches: ReturnType<ComposedGenerator['createSequence']>['caches'] extends () => infer C ? C : never; seqTokens: number[] }> {
  const gen = new ComposedGenerator({ small: small(), big: big(), policy, seed });
  const seq = gen.createSequence();
  try {
    await seq.append(prompt);
    const tokens: number[] = [];
    for await (const t of seq.generate({ maxTokens, sampler: GREEDY })) if (!t.stopped) tokens.push(t.token);
    return { tokens, gen, caches: seq.caches(), seqTokens: seq.tokens };
  } finally {
    seq.dispose();
  }
}

describe('composition on the engine', () => {
  it('one model alone through the composition is that model’s own rollout (same seed, same tokens)', async () => {
    const env = (generator: LocalGenerator) => methodEnv({ generator, small: small(), maxTokens: 48, seed: 3 });
    const solve = (m: ReasoningMethod, e: ReturnType<typeof env>) => m.solve({ problemId: 'p', promptTokens: prompt }, e);
    const plainSmall = await solve(fullRollout(), methodEnv({ generator: small(), maxTokens: 48, seed: 3 }));
    const plainBig = await solve(fullRollout(), methodEnv({ generator: big(), maxTokens: 48, seed: 3 }));
    const viaSmall = (await solve(composeMethod(smallOnlyPolicy()) as ReasoningMethod, env(big()))) as MethodOutcome;
    const viaBig = (await solve(composeMethod(bigOnlyPolicy()) as ReasoningMethod, env(big()))) as MethodOutcome;
    expect(viaSmall.traceTokens).toEqual(plainSmall.traceTokens);
    // The same tokens, and the same work: all of it the small model's.
    const { models, ...counts } = viaSmall.tokens;
    expect(counts).toEqual(plainSmall.tokens);
    expect(models).toEqual({ small: { decoded: plainSmall.tokens.decoded, prefilled: plainSmall.tokens.prefilled }, big: { decoded: 0, prefilled: 0 } });
    expect(viaBig.traceTokens).toEqual(plainBig.traceTokens);
    expect(viaBig.answerText).toBe(plainBig.answerText);
    expect(viaSmall.extra.compose).toMatchObject({ offloadShare: 0, big: { decoded: 0, prefilled: 0 } });
    expect(viaBig.extra.compose).toMatchObject({ offloadShare: 1, small: { decoded: 0 } });
  });

  it('random switch: cached hand-overs give exactly the resent trace, and both caches hold their copy', async () => {
    const chunk = 6;
    const maxTokens = 48;
    const r = await composedTrace(randomSwitchPolicy({ switchRatio: 1, switchChunk: chunk }), maxTokens);
    // The reference: every chunk from a fresh sequence that reads the prompt and everything written so far.
    const ref: number[] = [];
    for (let k = 0; ref.length < maxTokens; k++) {
      const ctx = chunkIsBig(5, k, 1) ? bigCtx : smallCtx;
      const part = await resend(ctx, [...prompt, ...ref], { maxTokens: Math.min(chunk, maxTokens - ref.length) });
      ref.push(...part);
      if (part.length < chunk) break;
    }
    expect(r.tokens).toEqual(ref);
    const authors = r.gen.stats().trace;
    expect(authors.big).toBeGreaterThan(0);
    expect(authors.small).toBeGreaterThan(0);
    // Each cache holds a prefix of the trace (the model that wrote last is up to date, the other reads lazily).
    expect(r.caches.small).toEqual(r.seqTokens.slice(0, r.caches.smallSynced));
    expect(r.caches.big).toEqual(r.seqTokens.slice(0, r.caches.bigSynced));
    // Only new tokens are read: each model prefilled the prompt once and then only the other's chunks.
    const w = r.gen.stats();
    expect(w.small.prefilled + w.big.prefilled).toBeLessThanOrEqual(2 * prompt.length + maxTokens);
  });

  it('taps: every token of the composed trace carries the small model’s hidden state at its position, big ones too', async () => {
    const gen = new ComposedGenerator({ small: small(), big: big(), policy: randomSwitchPolicy({ switchRatio: 1, switchChunk: 5 }), seed: 5 });
    const seq = gen.createSequence();
    const rows: Float32Array[] = [];
    const tokens: number[] = [];
    try {
      await seq.append(prompt);
      for await (const t of seq.generate({ maxTokens: 30, sampler: GREEDY, tapLayers: [1] })) {
        if (t.stopped) break;
        tokens.push(t.token);
        rows.push(t.hidden!.get(1)!);
      }
    } finally {
      seq.dispose();
    }
    expect(gen.stats().trace.big).toBeGreaterThan(0);
    // Reference: the small model reading the whole composed text at once, tapped at every generated position.
    const ref = smallCtx.createSequence();
    try {
      const all = [...prompt, ...tokens];
      const r = await ref.append(all, { taps: { layers: [1], positions: tokens.map((_, i) => prompt.length + i) } });
      const n = smallModel.info.nEmbd;
      const want = r.hidden.get(1)!;
      rows.forEach((row, i) => {
        const w = want.subarray(i * n, (i + 1) * n);
        const err = Math.max(...row.map((x, k) => Math.abs(x - w[k]!)));
        expect(err).toBeLessThan(1e-3);
      });
    } finally {
      ref.dispose();
    }
  });

  it('hand-back on real models: the first prefix whose greedy continuation writes the tag, as resending finds it', async () => {
    // The tiny models write bytes, so the protocol's strings are taken from what the small model writes greedily: it
    // hands over after its first token, and the closing "tag" is the first printable token it would write after a
    // prefix of the big model's first chunk.
    const every = 4;
    const text = (tokens: readonly number[]) => {
      const d = new TextDecoder('utf-8');
      return tokens.map((t) => d.decode(smallModel.tokenBytes(t), { stream: true })).join('');
    };
    const head = [...prompt, ...(await resend(smallCtx, prompt, { maxTokens: 1 }))];
    const firstChunk = await resend(bigCtx, head, { maxTokens: every });
    let tag = '';
    for (let j = 0; j < firstChunk.length && tag === ''; j++) {
      const t = text(await resend(smallCtx, [...head, ...firstChunk.slice(0, j + 1)], { maxTokens: 1 }));
      if (/^[!-~]+$/.test(t)) tag = t;
    }
    expect(tag).not.toBe('');
    const firstText = text(head.slice(prompt.length));
    const policy: CompositionPolicy = {
      name: 'test-split',
      setting: 'test',
      hiddenFromBig: [],
      requiresSmall: ['fork'],
      usesBig: true,
      nextTurn: (s): Turn => {
        if (s.generated === 0) return { model: 'small', maxTokens: 1 };
        const after = s.text.slice(firstText.length);
        if (after.includes(tag) || after.includes('END')) return { model: 'small', maxTokens: Infinity };
        return { model: 'big', maxTokens: 12 - s.trailingBig, handBack: { every, tag }, closeWith: 'END' };
      },
    };
    const r = await composedTrace(policy, 40);
    // Reference with resends: big chunks of 4, each prefix tried by a fresh small sequence, the first closing one kept.
    const ref = head.slice(prompt.length);
    const probeTokens = smallModel.tokenize(tag, { parseSpecial: false }).length + 2;
    let closedAt = -1;
    for (let written = 0; written < 12 && closedAt < 0; ) {
      const chunk = await resend(bigCtx, [...prompt, ...ref], { maxTokens: Math.min(every, 12 - written) });
      for (let j = 0; j < chunk.length && closedAt < 0; j++) {
        const probe = await resend(smallCtx, [...prompt, ...ref, ...chunk.slice(0, j + 1)], { maxTokens: probeTokens });
        for (let k = 1; k <= probe.length; k++) {
          const verdict = tagVerdict(text(probe.slice(0, k)), tag);
          if (verdict === 'undecided') continue;
          if (verdict === 'closes') {
            ref.push(...chunk.slice(0, j + 1));
            closedAt = ref.length;
          }
          break;
        }
      }
      if (closedAt < 0) {
        ref.push(...chunk);
        written += chunk.length;
      }
    }
    expect(closedAt).toBeGreaterThan(0);
    expect(r.tokens.slice(0, closedAt)).toEqual(ref);
    // Then the tag, written by the small model, and the small model carries on.
    expect(text(r.tokens.slice(closedAt)).trimStart().startsWith(tag)).toBe(true);
    expect(r.gen.stats().trace.big).toBe(closedAt - 1);
    expect(r.caches.small).toEqual(r.seqTokens.slice(0, r.caches.smallSynced));
    expect(r.caches.big).toEqual(r.seqTokens.slice(0, r.caches.bigSynced));
  });
});

describe('lynx eval --small', () => {
  // The step's contexts take their thread count from LYNX_THREADS: one, as every engine test on this busy machine.
  let threads: string | undefined;
  beforeAll(() => {
    threads = process.env.LYNX_THREADS;
    process.env.LYNX_THREADS = '1';
  });
  afterAll(() => {
    if (threads === undefined) delete process.env.LYNX_THREADS;
    else process.env.LYNX_THREADS = threads;
  });

  it('is resumable: an interrupted run picks up where it stopped and records what each model did', async () => {
    const out = join(dir, 'exp');
    const common = {
      model: join(dir, 'big.gguf'),
      small: join(dir, 'small.gguf'),
      benchmark: 'demo:test',
      selection: { limit: 4 },
      out,
      spec: { method: 'random-switch', switchRatios: [1], switchChunk: 8 },
      maxTokens: 32,
      sampler: { temperature: 0.6, topP: 0.95 },
      seed: 0,
      grading: 'zst' as const,
      concurrency: 1,
      exitCue: 'paper',
    };
    let seen = 0;
    await expect(
      evaluateStep({
        ...common,
        onProgress: () => {
          if (++seen === 2) throw new Error('interrupted');
        },
      }),
    ).rejects.toThrow('interrupted');
    const runDir = join(out, 'eval', 'demo-test', 'random-switch', 'ratio=1,chunk=8');
    const lines = () => readFileSync(join(runDir, 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines()).toHaveLength(2);
    const [result] = await evaluateStep(common);
    expect(result!.skipped).toBe(2);
    expect(result!.solved).toBe(2);
    const records = lines();
    expect(records).toHaveLength(4);
    expect(new Set(records.map((r) => r.id)).size).toBe(4);
    for (const r of records) {
      expect(r.extra.compose.mode).toBe('random-switch');
      expect(r.extra.compose.small.decoded + r.extra.compose.big.decoded).toBeGreaterThan(0);
    }
    const metrics = JSON.parse(readFileSync(join(runDir, 'metrics.json'), 'utf8'));
    expect(metrics.extra.compose.problems).toBe(4);
    expect(metrics.extra.compose.offloadShare).toBeGreaterThan(0);
    const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
    expect(config.small).toContain('small.gguf');
  });

  it.each(['logprob-subselect', 'specreason'])('lynx eval --method %s runs with its defaults (no option of its own given)', async (method) => {
    const out = join(dir, `exp-${method}`);
    const r = await cli(['eval', '-m', join(dir, 'big.gguf'), '--small', join(dir, 'small.gguf'), '--method', method, '-b', 'demo:test', '--limit', '1', '-n', '24', '-c', '1', '-o', out]);
    expect(r.err).not.toMatch(/lynx:/);
    expect(r.code).toBe(0);
    const [mode] = readdirSync(join(out, 'eval', 'demo-test', method));
    expect(mode).toMatch(method === 'specreason' ? /threshold=7/ : /candidates=4,draft=64,decay=2,big=16/);
  });

  it('refuses a composed method without --small, and --small for a one-model method', async () => {
    const base = { model: join(dir, 'big.gguf'), benchmark: 'demo:test', selection: { limit: 1 }, out: join(dir, 'x'), maxTokens: 8, sampler: { temperature: 0, topP: 1 }, seed: 0, grading: 'zst' as const, concurrency: 1, exitCue: 'paper' };
    await expect(evaluateStep({ ...base, spec: { method: 'split' } })).rejects.toThrow(/--small SMALL/);
    await expect(evaluateStep({ ...base, small: join(dir, 'small.gguf'), spec: { method: 'full' } })).rejects.toThrow(/--small is for/);
  });
});
