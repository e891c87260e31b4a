/**
 * `npm run bench -- --suite samplers`: host cost per token of each sampler on a 151,936-token vocabulary (the
 * R1-1.5B-shape bench model's logits after one decode, and a Zipf-shaped distribution like a trained model's), measured
 * on the draw alone (what a decode step adds on the main thread). Native chains are timed through the same candidate
 * fill llama_sampler_sample does internally.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LlamaContext, LlamaModel, Sampler, type SamplerOptions } from '../src/engine/index.js';
import { cacheDir } from '../src/util/paths.js';
import { writeBenchModel } from './engine.js';

const SAMPLERS: [string, SamplerOptions][] = [
  ['greedy', { temperature: 0 }],
  ['T 0.6, top-p 0.95', { temperature: 0.6, topP: 0.95 }],
  ['T 1.0, min-p 0.1', { temperature: 1, minP: 0.1 }],
  ['mirostat v1 (tau 3, eta 0.1)', { temperature: 1, mirostat: { version: 1, tau: 3, eta: 0.1 } }],
  ['mirostat v2 (tau 3, eta 0.1)', { temperature: 1, mirostat: { version: 2, tau: 3, eta: 0.1 } }],
  ['top-H (alpha 0.4, T 1)', { temperature: 1, topH: 0.4 }],
  ['EAD (1.2 -> 0.1, d 100) + top-p 0.95', { annealing: { tauMax: 1.2, tauMin: 0.1, decay: 100 }, topP: 0.95 }],
];

export async function benchSamplers(log: (s: string) => void): Promise<Record<string, unknown>> {
  const file = join(cacheDir(), 'bench', 'r1-distill-qwen-1.5b-shape.q8_0.gguf');
  if (!existsSync(file)) {
    mkdirSync(join(cacheDir(), 'bench'), { recursive: true });
    writeBenchModel(file, 'q8_0');
  }
  const model = LlamaModel.load(file);
  const context = new LlamaContext(model, { nCtx: 512, nSeqMax: 1 });
  const seq = context.createSequence();
  const { logits: modelLogits } = await seq.append(model.tokenize('Hello there, how are you?'));
  seq.dispose();
  // A trained model's next-token distribution is steep: Zipf with exponent 1.1 over the vocabulary, shuffled.
  const n = modelLogits.length;
  const zipf = new Float32Array(n);
  for (let i = 0; i < n; i++) zipf[(i * 7919) % n] = -1.1 * Math.log(i + 1);
  const rows: { sampler: string; distribution: string; msPerToken: number }[] = [];
  for (const [dname, logits] of [['bench model (flat)', modelLogits], ['Zipf 1.1 (trained-like)', zipf]] as const) {
    for (const [name, opts] of SAMPLERS) {
      const s = new Sampler(model.llama.api, { ...opts, seed: 1 }, n);
      for (let i = 0; i < 5; i++) s.sampleFromLogits(logits); // warm up
      const reps = 60;
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) s.sampleFromLogits(logits);
      const ms = (performance.now() - t0) / reps;
      s.dispose();
      rows.push({ sampler: name, distribution: dname, msPerToken: ms });
      log(`${dname} | ${name}: ${ms.toFixed(3)} ms/token`);
    }
  }
  context.dispose();
  model.dispose();
  log('\n| sampler | ms/token, bench model logits | ms/token, Zipf 1.1 | vs T 0.6 / top-p 0.95 (Zipf) |');
  log('|---|---|---|---|');
  const base = rows.find((r) => r.sampler.startsWith('T 0.6') && r.distribution.startsWith('Zipf'))!.msPerToken;
  for (const [name] of SAMPLERS) {
    const a = rows.find((r) => r.sampler === name && r.distribution.startsWith('bench'))!;
    const b = rows.find((r) => r.sampler === name && r.distribution.startsWith('Zipf'))!;
    log(`| ${name} | ${a.msPerToken.toFixed(3)} | ${b.msPerToken.toFixed(3)} | ${(b.msPerToken / base).toFixed(2)}x |`);
  }
  return { samplers: rows, vocabulary: n };
}
