/**
 * Run in a child process by test/engine-lifecycle.test.ts: every call here that a missing guard would let reach
 * llama.cpp on freed memory or with a bad value aborts or segfaults the process, so it must not run in the test
 * runner. Prints one JSON line per outcome: { scenario, target, member, outcome, message }.
 *
 * Usage: node --import tsx test/helpers/engine-lifecycle-probe.ts MODEL.gguf WORK_DIR WIDE_MODEL.gguf
 * (WIDE_MODEL: one whose KV cache for 2^24 cells exceeds any test machine's memory).
 */
import { join } from 'node:path';
import { LlamaContext, LlamaModel, Sampler, type Sequence } from '../../src/engine/index.js';

const [modelPath, workDir, wideModelPath] = process.argv.slice(2) as [string, string, string];

function report(scenario: string, target: string, member: string, outcome: string, message = ''): void {
  process.stdout.write(JSON.stringify({ scenario, target, member, outcome, message }) + '\n');
}

/** Members that tear down, or that say whether teardown happened: they must work after dispose. */
export const TEARDOWN_MEMBERS = new Set<string | symbol>(['constructor', 'dispose', 'disposed', 'disown', Symbol.dispose, Symbol.asyncDispose]);

const nameOf = (key: string | symbol) => (typeof key === 'symbol' ? key.toString() : key);

/** Call `obj[key]` (a getter, method, promise-returning method or async generator) and name what it threw. */
async function outcomeOf(obj: object, key: string | symbol, args: unknown[]): Promise<{ outcome: string; message: string }> {
  const proto = Object.getPrototypeOf(obj) as object;
  const desc = Object.getOwnPropertyDescriptor(proto, key)!;
  try {
    let result: unknown;
    if (desc.get) result = desc.get.call(obj);
    else result = (desc.value as (...a: unknown[]) => unknown).apply(obj, args);
    if (result instanceof Promise) result = await result;
    else if (result && typeof (result as AsyncGenerator).next === 'function' && typeof (result as AsyncGenerator).throw === 'function') {
      await (result as AsyncGenerator).next();
    }
    return { outcome: 'returned', message: '' };
  } catch (e) {
    return { outcome: (e as Error).name ?? 'unknown', message: (e as Error).message ?? String(e) };
  }
}

/** Every member on the prototype other than teardown ones, called with `args[name]` (or none). */
async function probeAll(scenario: string, target: string, obj: object, args: Record<string, unknown[]>): Promise<void> {
  const proto = Object.getPrototypeOf(obj) as object;
  const keys = Reflect.ownKeys(proto).filter((k) => !TEARDOWN_MEMBERS.has(k));
  report(scenario, target, '(members)', 'listed', keys.map(nameOf).join(','));
  for (const key of keys) {
    const { outcome, message } = await outcomeOf(obj, key, args[nameOf(key)] ?? []);
    report(scenario, target, nameOf(key), outcome, message);
  }
}

async function attempt(scenario: string, name: string, fn: () => unknown): Promise<void> {
  try {
    let r = fn();
    if (r instanceof Promise) r = await r;
    else if (r && typeof (r as AsyncGenerator).next === 'function' && typeof (r as AsyncGenerator).throw === 'function') {
      await (r as AsyncGenerator).next();
    }
    report(scenario, name, name, 'returned');
  } catch (e) {
    report(scenario, name, name, (e as Error).name, (e as Error).message);
  }
}

function argsFor(model: LlamaModel, seq: Sequence, nVocab: number): Record<string, unknown[]> {
  return {
    // model
    createContext: [{ nCtx: 256, nSeqMax: 1 }],
    meta: ['general.architecture'],
    tokenize: ['hi'],
    detokenize: [[1]],
    tokenBytes: [1],
    tokenPiece: [1],
    isEog: [1],
    isControl: [1],
    saveTo: [join(workDir, 'saved.gguf')],
    own: [{ dispose() {} }],
    // context
    releaseId: [0],
    whenIdle: [() => {}],
    submit: [{ seq, tokens: [1], startPos: 0, tapPositions: [], tapLayers: [], logprobK: 0, wantLogprob: false }],
    // sequence
    append: [[1]],
    generate: [{ maxTokens: 1 }],
    truncate: [0],
    keepLogits: [new Float32Array(nVocab)],
    // sampler
    sampleFromContext: [null, 0, new Float32Array(nVocab)],
    sampleFromContextAsync: [null, 0],
    sampleFromLogits: [new Float32Array(nVocab)],
    withSeed: [1],
    // referenced so the model is not collected early
    _model: [model],
  };
}

async function main(): Promise<void> {
  const prompt = (m: LlamaModel) => m.tokenize('Once upon a time there was a model');

  // 1. The model disposed under live contexts (one made by createContext, one by the constructor) and sequences.
  {
    const model = LlamaModel.load(modelPath);
    const nVocab = model.info.nVocab;
    const viaModel = model.createContext({ nCtx: 256, nSeqMax: 2 });
    const viaConstructor = new LlamaContext(model, { nCtx: 256, nSeqMax: 2 });
    const seq = viaModel.createSequence();
    await seq.append(prompt(model));
    const other = viaConstructor.createSequence();
    await other.append(prompt(model));
    model.dispose();
    report('model', 'flags', 'disposed', JSON.stringify([model.disposed, viaModel.disposed, viaConstructor.disposed, seq.disposed, other.disposed]));
    const args = argsFor(model, seq, nVocab);
    await probeAll('model', 'LlamaModel', model, args);
    await probeAll('model', 'LlamaContext', viaModel, args);
    await probeAll('model', 'LlamaContext(constructor)', viaConstructor, args);
    await probeAll('model', 'Sequence', seq, args);
    await probeAll('model', 'Sequence(constructor)', other, args);
    // Issue 22's reproduction, one call at a time.
    await attempt('model', 'tokenize', () => model.tokenize('hi'));
    await attempt('model', 'detokenize', () => model.detokenize([1]));
    await attempt('model', 'generate', () => seq.generate({ maxTokens: 4 }));
    await attempt('model', 'new LlamaContext', () => new LlamaContext(model, { nCtx: 256 }));
    report('model', 'info', 'path', model.info.path === modelPath ? 'readable' : 'changed');
  }

  // 2. A context disposed alone: its sequences go with it, the model stays usable.
  {
    const model = LlamaModel.load(modelPath);
    const ctx = model.createContext({ nCtx: 256, nSeqMax: 2 });
    const seq = ctx.createSequence();
    await seq.append(prompt(model));
    ctx.dispose();
    await probeAll('context', 'LlamaContext', ctx, argsFor(model, seq, model.info.nVocab));
    await probeAll('context', 'Sequence', seq, argsFor(model, seq, model.info.nVocab));
    await attempt('context', 'model still works', () => model.detokenize(model.tokenize('still here')));
    model.dispose();
  }

  // 3. A sequence disposed alone: the context stays usable; a sampler disposed alone.
  {
    const model = LlamaModel.load(modelPath);
    const ctx = model.createContext({ nCtx: 256, nSeqMax: 2 });
    const seq = ctx.createSequence();
    await seq.append(prompt(model));
    seq.dispose();
    await probeAll('sequence', 'Sequence', seq, argsFor(model, seq, model.info.nVocab));
    await attempt('sequence', 'context still works', async () => {
      const s = ctx.createSequence();
      await s.append(prompt(model));
      for await (const t of s.generate({ maxTokens: 2 })) void t;
    });
    const sampler = new Sampler(model.llama.api, { temperature: 1, seed: 1 });
    sampler.dispose();
    await probeAll('sequence', 'Sampler', sampler, argsFor(model, seq, model.info.nVocab));
    model.dispose();
  }

  // 4. The model disposed while a prefill decodes on a worker thread: the append fails cleanly, memory is freed after.
  {
    const model = LlamaModel.load(modelPath);
    const ctx = model.createContext({ nCtx: 1024, nSeqMax: 1, nBatch: 512, decodeOffThread: true });
    const seq = ctx.createSequence();
    const long = Array.from({ length: 400 }, (_, i) => 65 + (i % 26));
    const pending = seq.append(long).then(
      () => 'returned',
      (e: Error) => e.name,
    );
    const working = () => (ctx as unknown as { working: boolean }).working;
    for (let i = 0; i < 100 && !working(); i++) await new Promise((r) => setImmediate(r)); // until the flush started it
    const workingAtDispose = working();
    model.dispose();
    report('during-decode', 'append', 'working at dispose', String(workingAtDispose));
    report('during-decode', 'append', 'outcome', await pending);
    await model[Symbol.asyncDispose]();
    report('during-decode', 'model', 'freed', 'yes');
  }

  // 5. Values llama.cpp would abort on (or silently misuse), on live objects.
  {
    const model = LlamaModel.load(modelPath);
    const n = model.info.nVocab;
    const ctx = model.createContext({ nCtx: 512, nSeqMax: 2 });
    const seq = ctx.createSequence();
    await seq.append(prompt(model));
    const cases: [string, () => unknown][] = [
      ['detokenize out of vocabulary', () => model.detokenize([n + 5])],
      ['detokenize negative', () => model.detokenize([-1])],
      ['tokenBytes out of vocabulary', () => model.tokenBytes(n)],
      ['tokenPiece negative', () => model.tokenPiece(-1)],
      ['isEog out of vocabulary', () => model.isEog(1e6)],
      ['isControl NaN', () => model.isControl(Number.NaN)],
      ['tokenize non-string', () => model.tokenize(42 as unknown as string)],
      ['append out of vocabulary', () => seq.append([1, n])],
      ['append fractional token', () => seq.append([1.5])],
      ['append empty', () => seq.append([])],
      ['append tap layer beyond the model', () => seq.append([1], { taps: { layers: [99] } })],
      ['nCtx 1 with 16 sequences', () => model.createContext({ nCtx: 1 })],
      ['nBatch below nSeqMax', () => model.createContext({ nBatch: 15, nSeqMax: 16 })],
      ['nSeqMax 300', () => model.createContext({ nSeqMax: 300 })],
      ['nSeqMax 0', () => model.createContext({ nSeqMax: 0 })],
      ['nBatch 0', () => model.createContext({ nBatch: 0 })],
      ['nCtx 0', () => model.createContext({ nCtx: 0 })],
      [
        'nCtx larger than memory',
        () => {
          const wide = LlamaModel.load(wideModelPath);
          try {
            return wide.createContext({ nCtx: 2 ** 24, nSeqMax: 1, kvType: 'f32' });
          } finally {
            wide.dispose();
          }
        },
      ],
      ['threads 0', () => model.createContext({ threads: 0 })],
      ['threads 1000', () => model.createContext({ threads: 1000 })],
      ['threads 1.5', () => model.createContext({ threads: 1.5 })],
      ['kvType bf16', () => model.createContext({ kvType: 'bf16' as 'f16' })],
      ['q8_0 cache without flash attention', () => model.createContext({ kvType: 'q8_0', flashAttention: false })],
      ['maxTokens 0', () => seq.generate({ maxTokens: 0 })],
      ['maxTokens -1', () => seq.generate({ maxTokens: -1 })],
      ['maxTokens NaN', () => seq.generate({ maxTokens: Number.NaN })],
      ['topLogprobs -1', () => seq.generate({ maxTokens: 1, topLogprobs: -1 })],
      ['tapLayers beyond the model', () => seq.generate({ maxTokens: 1, tapLayers: [99] })],
      ['empty stop string', () => seq.generate({ maxTokens: 1, stop: { strings: [''] } })],
      ['temperature -1', () => seq.generate({ maxTokens: 1, sampler: { temperature: -1 } })],
      ['temperature NaN', () => seq.generate({ maxTokens: 1, sampler: { temperature: Number.NaN } })],
      ['topP 2', () => seq.generate({ maxTokens: 1, sampler: { temperature: 1, topP: 2 } })],
      ['topK 1.5', () => seq.generate({ maxTokens: 1, sampler: { temperature: 1, topK: 1.5 } })],
      ['gpuLayers -2', () => LlamaModel.load(modelPath, { gpuLayers: -2 })],
      ['model path empty', () => LlamaModel.load('')],
      [
        'LYNX_THREADS 1000',
        () => {
          process.env.LYNX_THREADS = '1000';
          try {
            return model.createContext({ nCtx: 256 });
          } finally {
            delete process.env.LYNX_THREADS;
          }
        },
      ],
      [
        'LYNX_THREADS abc',
        () => {
          process.env.LYNX_THREADS = 'abc';
          try {
            return model.createContext({ nCtx: 256 });
          } finally {
            delete process.env.LYNX_THREADS;
          }
        },
      ],
    ];
    for (const [name, fn] of cases) await attempt('bad-input', name, fn);
    // After all of that the sequence still generates.
    await attempt('bad-input', 'still generates', async () => {
      for await (const t of seq.generate({ maxTokens: 3 })) void t;
    });
    model.dispose();
  }
  report('done', '', '', 'done');
}

await main();
