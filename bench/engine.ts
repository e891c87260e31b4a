/**
 * Engine benchmark on a model of DeepSeek-R1-Distill-Qwen-1.5B's shape (random weights, written by the project):
 * prefill and decode tokens/s, decode with 3 tapped layers, aggregate throughput with 1/4/16 sequences, the same file
 * through node-llama-cpp's high-level API as the peer, and the memory-bandwidth roofline.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { resolveThreads } from '../src/engine/threads.js';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import type { SamplerOptions } from '../src/engine/sampler.js';
import { GgufWriter } from '../src/formats/gguf/writer.js';
import { byteToUnicode, TINY } from '../test/helpers/engine-models.js';
import { measureBandwidth } from './bandwidth.js';

export const R1_1_5B_SHAPE = { nLayer: 28, nEmbd: 1536, nFf: 8960, nHead: 12, nHeadKv: 2, nVocab: 151936 };

type Shape = typeof R1_1_5B_SHAPE;

/** Write a qwen2 model of the given shape with random weights; cheap uniform noise, since only speed matters here. */
export function writeBenchModel(path: string, type: 'q8_0' | 'bf16' | 'f16' | 'f32', shape: Shape = R1_1_5B_SHAPE): void {
  const { nLayer, nEmbd, nFf, nHead, nHeadKv, nVocab } = shape;
  const kvDim = (nEmbd / nHead) * nHeadKv;
  const w = new GgufWriter();
  const a = 'qwen2';
  w.set('general.architecture', a);
  w.set('general.name', `bench-r1-distill-qwen-1.5b-shape-${type}`);
  w.set(`${a}.block_count`, nLayer, 'u32');
  w.set(`${a}.context_length`, 32768, 'u32');
  w.set(`${a}.embedding_length`, nEmbd, 'u32');
  w.set(`${a}.feed_forward_length`, nFf, 'u32');
  w.set(`${a}.attention.head_count`, nHead, 'u32');
  w.set(`${a}.attention.head_count_kv`, nHeadKv, 'u32');
  w.set(`${a}.attention.layer_norm_rms_epsilon`, 1e-6, 'f32');
  w.set(`${a}.rope.freq_base`, 10000, 'f32');
  // Byte-level vocabulary padded with unreachable filler tokens up to the real vocabulary size.
  const bytes = byteToUnicode();
  const merged = TINY.merges.map((m) => m.replace(' ', ''));
  const tokens = [...bytes, ...merged];
  while (tokens.length < nVocab - TINY.specials.length) tokens.push(`<filler_${tokens.length}>`);
  tokens.push(...TINY.specials);
  const types = tokens.map((t, i) => (i >= nVocab - TINY.specials.length ? 3 : t.startsWith('<filler_') ? 5 : 1));
  w.set('tokenizer.ggml.model', 'gpt2');
  w.set('tokenizer.ggml.pre', 'qwen2');
  w.set('tokenizer.ggml.tokens', tokens, 'string[]');
  w.set('tokenizer.ggml.token_type', types, 'i32[]');
  w.set('tokenizer.ggml.merges', TINY.merges, 'string[]');
  w.set('tokenizer.ggml.eos_token_id', tokens.indexOf('<｜end▁of▁sentence｜>'), 'u32');
  w.set('tokenizer.ggml.bos_token_id', tokens.indexOf('<｜begin▁of▁sentence｜>'), 'u32');
  let state = 0x9e3779b9;
  const noise = (n: number, scale: number) => () => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      out[i] = (state / 4294967296 - 0.5) * 2 * scale;
    }
    return out;
  };
  const ones = (n: number) => () => new Float32Array(n).fill(1);
  const mat = (name: string, dims: number[], scale = 0.02) => w.addTensor(name, dims, noise(dims[0]! * dims[1]!, scale), type);
  mat('token_embd.weight', [nEmbd, nVocab]);
  w.addTensor('output_norm.weight', [nEmbd], ones(nEmbd), 'f32');
  mat('output.weight', [nEmbd, nVocab]);
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    w.addTensor(p + 'attn_norm.weight', [nEmbd], ones(nEmbd), 'f32');
    mat(p + 'attn_q.weight', [nEmbd, nEmbd]);
    mat(p + 'attn_k.weight', [nEmbd, kvDim]);
    mat(p + 'attn_v.weight', [nEmbd, kvDim]);
    w.addTensor(p + 'attn_q.bias', [nEmbd], noise(nEmbd, 0.02), 'f32');
    w.addTensor(p + 'attn_k.bias', [kvDim], noise(kvDim, 0.02), 'f32');
    w.addTensor(p + 'attn_v.bias', [kvDim], noise(kvDim, 0.02), 'f32');
    mat(p + 'attn_output.weight', [nEmbd, nEmbd]);
    w.addTensor(p + 'ffn_norm.weight', [nEmbd], ones(nEmbd), 'f32');
    mat(p + 'ffn_gate.weight', [nEmbd, nFf]);
    mat(p + 'ffn_up.weight', [nEmbd, nFf]);
    mat(p + 'ffn_down.weight', [nFf, nEmbd]);
  }
  w.write(path);
}

export interface EngineBenchResult {
  file: string;
  type: string;
  fileBytes: number;
  /** Bytes read per decoded token: every weight except the embedding table (one row of it is read). */
  weightBytesPerToken: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  decodeTappedTokensPerSecond: number;
  tapOverhead: number;
  aggregate: { sequences: number; tokensPerSecond: number }[];
  /**
   * 16 sequences drawing at the settings reasoning models are evaluated with (T 0.6, top-p 0.95): tokens drawn one
   * after another on the main thread (llama.cpp's usual way) against in parallel on worker threads (the default).
   */
  sampling16?: { sampler: string; serialTokensPerSecond: number; parallelTokensPerSecond: number };
  /** Single-sequence decode on one thread: how decode scales with cores (memory-bound decode would not double). */
  decodeOneThreadTokensPerSecond?: number;
  /** What one core can stream (GB/s), and the one-thread decode's share of that one-core roofline. */
  oneCoreBandwidthGbPerSecond?: number;
  oneThreadRooflineFraction?: number;
  peer?: { name: string; decodeTokensPerSecond: number; error?: string };
  rooflineTokensPerSecond?: number;
  rooflineFraction?: number;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeDecode(model: LlamaModel, opts: { tokens: number; taps?: number[]; reps: number; threads?: number }): Promise<number> {
  const ctx = new LlamaContext(model, { nCtx: 1024, nSeqMax: 1, nBatch: 512, taps: opts.taps !== undefined, threads: opts.threads });
  const rates: number[] = [];
  for (let r = 0; r < opts.reps; r++) {
    const seq = ctx.createSequence();
    await seq.append(model.tokenize('The benchmark prompt for decoding speed.'));
    const t0 = performance.now();
    let n = 0;
    for await (const t of seq.generate({ maxTokens: opts.tokens, stop: { eog: false }, tapLayers: opts.taps })) {
      if (opts.taps && !t.hidden) throw new Error('tap missing');
      n++;
    }
    rates.push(n / ((performance.now() - t0) / 1000));
    seq.dispose();
  }
  ctx.dispose();
  return median(rates);
}

async function timePrefill(model: LlamaModel, nTokens: number, reps: number): Promise<number> {
  const ctx = new LlamaContext(model, { nCtx: 1024, nSeqMax: 1, nBatch: 512, taps: false });
  const ids = Array.from({ length: nTokens }, (_, i) => 100 + (i % 200));
  const rates: number[] = [];
  for (let r = 0; r < reps; r++) {
    const seq = ctx.createSequence();
    const t0 = performance.now();
    await seq.append(ids);
    rates.push(nTokens / ((performance.now() - t0) / 1000));
    seq.dispose();
  }
  ctx.dispose();
  return median(rates);
}

async function timeAggregate(
  model: LlamaModel,
  sequences: number,
  tokensEach: number,
  sampler: SamplerOptions = { temperature: 0.8 },
  parallelSampling: boolean | 'auto' = 'auto',
): Promise<number> {
  const ctx = new LlamaContext(model, { nCtx: 4096, nSeqMax: sequences, nBatch: 512, taps: false, parallelSampling });
  const seqs = [];
  for (let i = 0; i < sequences; i++) {
    const s = ctx.createSequence();
    await s.append(model.tokenize(`Sequence number ${i} starts here.`));
    seqs.push(s);
  }
  const t0 = performance.now();
  const counts = await Promise.all(
    seqs.map(async (s, i) => {
      let n = 0;
      for await (const _ of s.generate({ maxTokens: tokensEach, stop: { eog: false }, sampler: { ...sampler, seed: i } })) n++;
      return n;
    }),
  );
  const rate = counts.reduce((a, b) => a + b, 0) / ((performance.now() - t0) / 1000);
  ctx.dispose();
  return rate;
}

/**
 * The peer's decode speed, measured in a child process (bench/peer-decode.ts) with a deadline: a peer that stalls
 * (it once oversubscribed the cores for minutes) is killed and reported, and the benchmark goes on.
 */
async function peerDecode(path: string, tokens: number, reps: number, deadlineSeconds = 600): Promise<EngineBenchResult['peer']> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'peer-decode.ts');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, path, String(tokens), String(reps), String(resolveThreads())], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineSeconds * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(line) as { name: string; decodeTokensPerSecond: number | null; error?: string };
        resolve({ name: r.name, decodeTokensPerSecond: r.decodeTokensPerSecond ?? NaN, error: r.error });
      } catch {
        const why = signal === 'SIGKILL' ? `killed after the ${deadlineSeconds} s deadline` : `exited with ${signal ?? code}: ${err.trim().slice(-300)}`;
        resolve({ name: 'node-llama-cpp', decodeTokensPerSecond: NaN, error: why });
      }
    });
  });
}

export async function benchEngine(cacheDir: string, types: ('q8_0' | 'bf16')[], log: (s: string) => void): Promise<EngineBenchResult[]> {
  mkdirSync(cacheDir, { recursive: true });
  const bw = await measureBandwidth();
  log(`memory bandwidth: ${bw.gbPerSecond.toFixed(1)} GB/s (${bw.method})`);
  const bw1 = await measureBandwidth(1);
  log(`memory bandwidth, one core: ${bw1.gbPerSecond.toFixed(1)} GB/s (${bw1.method})`);
  const results: EngineBenchResult[] = [];
  for (const type of types) {
    const file = join(cacheDir, `r1-distill-qwen-1.5b-shape.${type}.gguf`);
    if (!existsSync(file)) {
      log(`writing ${file} ...`);
      writeBenchModel(file, type);
    }
    const model = LlamaModel.load(file);
    const fileBytes = statSync(file).size;
    const bytesPerParam = type === 'q8_0' ? 34 / 32 : 2;
    const embdBytes = R1_1_5B_SHAPE.nVocab * R1_1_5B_SHAPE.nEmbd * bytesPerParam;
    const weightBytesPerToken = model.info.sizeBytes - embdBytes;
    log(`${type}: ${model.info.description}, ${(fileBytes / 1e9).toFixed(2)} GB`);
    const prefill = await timePrefill(model, 512, 3);
    log(`  prefill 512: ${prefill.toFixed(1)} tok/s`);
    const decode = await timeDecode(model, { tokens: 64, reps: 3 });
    log(`  decode: ${decode.toFixed(2)} tok/s`);
    const tapped = await timeDecode(model, { tokens: 64, taps: [9, 16, 27], reps: 3 });
    log(`  decode, 3 layers tapped every token: ${tapped.toFixed(2)} tok/s`);
    const aggregate = [];
    for (const n of [1, 4, 16]) {
      const rate = await timeAggregate(model, n, n === 1 ? 48 : 32);
      aggregate.push({ sequences: n, tokensPerSecond: rate });
      log(`  aggregate decode, ${n} sequences: ${rate.toFixed(1)} tok/s`);
    }
    const evalSampler = { temperature: 0.6, topP: 0.95 };
    const serial = await timeAggregate(model, 16, 32, evalSampler, false);
    const parallel = await timeAggregate(model, 16, 32, evalSampler, 'auto');
    log(`  16 sequences at T 0.6 / top-p 0.95: serial draws ${serial.toFixed(1)} tok/s, parallel ${parallel.toFixed(1)} tok/s`);
    const oneThread = await timeDecode(model, { tokens: 32, reps: 3, threads: 1 });
    log(`  decode on 1 thread: ${oneThread.toFixed(2)} tok/s`);
    model.dispose();
    const peer = await peerDecode(file, 64, 3);
    log(`  peer ${peer?.name}: ${peer?.decodeTokensPerSecond.toFixed(2)} tok/s ${peer?.error ?? ''}`);
    const roofline = (bw.gbPerSecond * 1e9) / weightBytesPerToken;
    results.push({
      file,
      type,
      fileBytes,
      weightBytesPerToken,
      prefillTokensPerSecond: prefill,
      decodeTokensPerSecond: decode,
      decodeTappedTokensPerSecond: tapped,
      tapOverhead: 1 - tapped / decode,
      aggregate,
      sampling16: { sampler: 'temperature 0.6, top-p 0.95', serialTokensPerSecond: serial, parallelTokensPerSecond: parallel },
      decodeOneThreadTokensPerSecond: oneThread,
      oneCoreBandwidthGbPerSecond: bw1.gbPerSecond,
      oneThreadRooflineFraction: (oneThread * weightBytesPerToken) / (bw1.gbPerSecond * 1e9),
      peer,
      rooflineTokensPerSecond: roofline,
      rooflineFraction: decode / roofline,
    });
  }
  return results;
}
