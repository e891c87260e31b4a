/**
 * The engine's lifecycle and guards: the model owns its contexts and they own their sequences; after dispose every
 * member throws DisposedError with no native call; `using` / `await using`; the asynchronous load; AbortSignal on
 * append and generate; decodes off the main thread; thread counts; signals during a decode.
 *
 * Whatever a missing guard would turn into a native abort or segfault runs in a child process
 * (test/helpers/engine-lifecycle-probe.ts), so it fails a test instead of killing the runner.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortError,
  availableCores,
  DisposedError,
  LlamaContext,
  LlamaModel,
  LynxEngineUsageError,
  ModelLoadError,
  resolveThreads,
  type Sequence,
} from '../src/engine/index.js';
import { buildTinyGguf } from './helpers/engine-models.js';

// F32 KV cache and no flash attention: results independent of batch composition (see ContextOptions.kvType).
const EXACT = { kvType: 'f32', flashAttention: false } as const;
const REPO = join(import.meta.dirname, '..');
const PROMPT = 'The quick brown fox jumps over the lazy dog. 12 + 30 = 42';

let dir: string;
let path: string;
/** Wide enough that a 1024-token prefill takes a while, and that 2^24 KV cells exceed any machine's memory. */
let widePath: string;
let model: LlamaModel;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-lifecycle-'));
  path = buildTinyGguf(join(dir, 'tiny.gguf'), { arch: 'qwen2', type: 'f32' });
  widePath = buildTinyGguf(join(dir, 'wide.gguf'), { arch: 'qwen2', type: 'f32', nEmbd: 256, nLayer: 8, nHead: 4, nHeadKv: 4, nFf: 512 });
  model = LlamaModel.load(path);
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

/** Turn the event loop until the context has native work in flight (the flush runs after the microtasks of the last step). */
async function untilWorking(context: LlamaContext): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if ((context as unknown as { working: boolean }).working) return true;
    await new Promise((r) => setImmediate(r));
  }
  return false;
}

interface ProbeLine {
  scenario: string;
  target: string;
  member: string;
  outcome: string;
  message: string;
}

describe('after dispose, every member throws DisposedError (probed in a child process)', () => {
  let lines: ProbeLine[];
  const of = (scenario: string, target: string) => lines.filter((l) => l.scenario === scenario && l.target === target);
  /** The members the probe called, with what each threw; fails when the listing itself is missing. */
  const members = (scenario: string, target: string) => {
    const listed = of(scenario, target).find((l) => l.member === '(members)');
    expect(listed, `${scenario}/${target} was not probed`).toBeDefined();
    const names = listed!.message.split(',');
    const outcomes = Object.fromEntries(of(scenario, target).filter((l) => l.member !== '(members)').map((l) => [l.member, l.outcome]));
    expect(Object.keys(outcomes).sort()).toEqual([...names].sort());
    return { names, outcomes };
  };
  const allDisposed = (names: string[]) => Object.fromEntries(names.map((n) => [n, 'DisposedError']));

  beforeAll(() => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/engine-lifecycle-probe.ts'), path, dir, widePath], {
      cwd: REPO,
      encoding: 'utf8',
      env: { ...process.env, LYNX_THREADS: '1' },
    });
    lines = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProbeLine);
    // A native abort (134) or segfault (139) ends the child early: say where.
    expect(r.status, `child exited ${r.status} (${r.signal ?? ''}) after ${JSON.stringify(lines.at(-1))}\n${r.stderr}`).toBe(0);
    expect(lines.at(-1)!.scenario).toBe('done');
  });

  it('the model disposed under live contexts (both ways of creating one) takes them and their sequences along', () => {
    expect(of('model', 'flags')[0]!.outcome).toBe('[true,true,true,true,true]');
    for (const target of ['LlamaModel', 'LlamaContext', 'LlamaContext(constructor)', 'Sequence', 'Sequence(constructor)']) {
      const { names, outcomes } = members('model', target);
      expect(outcomes, target).toEqual(allDisposed(names));
    }
    // The listing is the real prototype: the public methods are all in it.
    expect(members('model', 'LlamaModel').names).toEqual(
      expect.arrayContaining(['createContext', 'meta', 'metaEntries', 'tokenize', 'detokenize', 'tokenBytes', 'tokenPiece', 'isEog', 'isControl', 'saveTo']),
    );
    expect(members('model', 'LlamaContext').names).toEqual(expect.arrayContaining(['createSequence', 'freeSlots']));
    expect(members('model', 'Sequence').names).toEqual(expect.arrayContaining(['append', 'generate', 'fork', 'truncate', 'length', 'tokens', 'lastLogits']));
    // Issue 22's reproductions (tokenize aborted with std::out_of_range, detokenize aborted, generate segfaulted).
    for (const call of ['tokenize', 'detokenize', 'generate', 'new LlamaContext']) {
      expect(of('model', call)[0], call).toMatchObject({ outcome: 'DisposedError' });
    }
    expect(of('model', 'tokenize')[0]!.message).toMatch(/the model .* was disposed: load it again/);
    // What the file said about the model stays readable (plain data, no native memory behind it).
    expect(of('model', 'info')[0]!.outcome).toBe('readable');
  });

  it('a context disposed alone takes its sequences; its model stays usable', () => {
    for (const target of ['LlamaContext', 'Sequence']) {
      const { names, outcomes } = members('context', target);
      expect(outcomes, target).toEqual(allDisposed(names));
    }
    expect(of('context', 'model still works')[0]!.outcome).toBe('returned');
  });

  it('a sequence or a sampler disposed alone; the context stays usable', () => {
    for (const target of ['Sequence', 'Sampler']) {
      const { names, outcomes } = members('sequence', target);
      expect(outcomes, target).toEqual(allDisposed(names));
    }
    expect(of('sequence', 'context still works')[0]!.outcome).toBe('returned');
  });

  it('the model disposed while a prefill decodes on a worker thread: the append is refused, the memory freed after it', () => {
    const d = of('during-decode', 'append');
    expect(d.find((l) => l.member === 'working at dispose')!.outcome).toBe('true'); // the case really arose
    expect(d.find((l) => l.member === 'outcome')!.outcome).toBe('DisposedError');
    expect(of('during-decode', 'model')[0]!.outcome).toBe('yes');
  });

  it('values llama.cpp would abort on get a LynxError naming the allowed range', () => {
    const bad = lines.filter((l) => l.scenario === 'bad-input');
    const byName = Object.fromEntries(bad.map((l) => [l.member, l]));
    const usage = Object.keys(byName).filter((k) => !['still generates', 'nCtx larger than memory', 'model path empty'].includes(k));
    expect(usage.length).toBeGreaterThan(30);
    for (const k of usage) expect(byName[k]!.outcome, `${k}: ${byName[k]!.message}`).toBe('LynxEngineUsageError');
    const cores = availableCores();
    expect(byName['threads 1000']!.message).toBe(`threads must be an integer from 1 to ${2 * cores} (2 x the ${cores} available cores), got 1000`);
    expect(byName['LYNX_THREADS abc']!.message).toMatch(/^LYNX_THREADS must be an integer from 1 to/);
    expect(byName['isEog out of vocabulary']!.message).toMatch(/token 1000000 is not in the vocabulary \(ids 0 to \d+\)/);
    expect(byName['nBatch below nSeqMax']!.message).toMatch(/nBatch 15 must be at least nSeqMax 16/);
    expect(byName['nSeqMax 300']!.message).toMatch(/from 1 to 256/);
    expect(byName['maxTokens 0']!.message).toMatch(/maxTokens must be an integer >= 1, got 0/);
    expect(byName['nCtx larger than memory']).toMatchObject({ outcome: 'ContextFullError' });
    expect(byName['nCtx larger than memory']!.message).toMatch(/needs [\d.]+ GiB but this machine has [\d.]+ GiB of memory: use nCtx \d+ or less/);
    expect(byName['model path empty']!.outcome).toBe('ModelLoadError');
    expect(byName['still generates']!.outcome).toBe('returned');
  });
});

describe('using and await using', () => {
  it('dispose a model, its context and a sequence at the end of the block, innermost first', async () => {
    let seen: { model: LlamaModel; context: LlamaContext; seq: Sequence } | undefined;
    {
      using m = LlamaModel.load(path);
      using context = m.createContext({ nCtx: 256, nSeqMax: 1 });
      using seq = context.createSequence();
      await seq.append(m.tokenize(PROMPT));
      expect(seq.length).toBeGreaterThan(0);
      seen = { model: m, context, seq };
    }
    expect([seen.seq.disposed, seen.context.disposed, seen.model.disposed]).toEqual([true, true, true]);
    expect(() => seen!.seq.length).toThrow(DisposedError);
  });

  it('await using with loadAsync waits until the native memory is freed', async () => {
    let kept: LlamaModel | undefined;
    {
      await using m = await LlamaModel.loadAsync(path);
      await using context = new LlamaContext(m, { nCtx: 256, nSeqMax: 1 });
      const seq = context.createSequence();
      await seq.append(m.tokenize(PROMPT));
      kept = m;
    }
    expect(kept.disposed).toBe(true);
    expect(typeof Symbol.dispose).toBe('symbol');
    expect(typeof Symbol.asyncDispose).toBe('symbol');
  });

  it('dispose() twice, or a context after its model, does nothing more', async () => {
    const m = LlamaModel.load(path);
    const a = m.createContext({ nCtx: 256, nSeqMax: 1 });
    const b = new LlamaContext(m, { nCtx: 256, nSeqMax: 1 });
    const seq = b.createSequence();
    m.dispose();
    expect([a.disposed, b.disposed, seq.disposed]).toEqual([true, true, true]);
    a.dispose();
    seq.dispose();
    m.dispose();
    await m[Symbol.asyncDispose]();
    expect(() => m.createContext()).toThrow(/the model .* was disposed/);
  });
});

describe('LlamaModel.loadAsync', () => {
  it('loads the same model as load() while the event loop keeps turning, reporting progress up to 1', async () => {
    let turns = 0;
    let loading = true;
    const spin = () => {
      if (!loading) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const progress: number[] = [];
    const m = await LlamaModel.loadAsync(widePath, { onProgress: (f) => progress.push(f) });
    loading = false;
    try {
      const sync = LlamaModel.load(widePath);
      expect(m.info).toEqual(sync.info);
      expect(m.tokenize(PROMPT)).toEqual(sync.tokenize(PROMPT));
      sync.dispose();
      expect(turns).toBeGreaterThan(0);
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.at(-1)).toBe(1);
      expect(progress.every((f, i) => f >= 0 && f <= 1 && (i === 0 || f >= progress[i - 1]!))).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('an abort during the load cancels it with AbortError; an aborted signal refuses at once', async () => {
    const controller = new AbortController();
    let reports = 0;
    const loading = LlamaModel.loadAsync(widePath, {
      signal: controller.signal,
      onProgress: () => {
        reports++;
        controller.abort(new Error('shutting down'));
      },
    });
    const err = await loading.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AbortError);
    expect((err as AbortError).name).toBe('AbortError');
    expect(((err as AbortError).cause as Error).message).toBe('shutting down');
    expect(reports).toBe(1); // llama.cpp stopped at the next report
    await expect(LlamaModel.loadAsync(path, { signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
  });

  it('gives the same errors as load() for bad files, and an observer that throws stops the load with its error', async () => {
    await expect(LlamaModel.loadAsync(join(dir, 'absent.gguf'))).rejects.toThrow(ModelLoadError);
    const junk = join(dir, 'junk.gguf');
    writeFileSync(junk, Buffer.concat([Buffer.from('GGUF'), Buffer.alloc(4096, 0xff)]));
    await expect(LlamaModel.loadAsync(junk)).rejects.toThrow(ModelLoadError);
    await expect(
      LlamaModel.loadAsync(path, {
        onProgress: () => {
          throw new Error('observer failed');
        },
      }),
    ).rejects.toThrow('observer failed');
  });
});

describe('AbortSignal on generate and append', () => {
  /** Greedy tokens of an uninterrupted run from PROMPT. */
  async function reference(context: LlamaContext, n: number): Promise<number[]> {
    const seq = context.createSequence();
    await seq.append(model.tokenize(PROMPT));
    const out: number[] = [];
    for await (const t of seq.generate({ maxTokens: n, stop: { eog: false } })) out.push(t.token);
    seq.dispose();
    return out;
  }

  async function collect(seq: Sequence, n: number): Promise<number[]> {
    const out: number[] = [];
    for await (const t of seq.generate({ maxTokens: n, stop: { eog: false } })) out.push(t.token);
    return out;
  }

  it('aborting mid-generation ends the generator with AbortError; the sequence holds what was yielded and goes on', async () => {
    const context = model.createContext({ ...EXACT, nCtx: 512, nSeqMax: 2 });
    const ref = await reference(context, 8);
    const seq = context.createSequence();
    const prompt = model.tokenize(PROMPT);
    await seq.append(prompt);
    const controller = new AbortController();
    const got: number[] = [];
    const run = async () => {
      for await (const t of seq.generate({ maxTokens: 8, stop: { eog: false }, signal: controller.signal })) {
        got.push(t.token);
        if (got.length === 3) controller.abort(new Error('client went away'));
      }
    };
    const err = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AbortError);
    expect((err as Error).message).toMatch(/generate\(\) was aborted/);
    expect(((err as AbortError).cause as Error).message).toBe('client went away');
    expect(got).toEqual(ref.slice(0, 3));
    expect(seq.tokens).toEqual([...prompt, ...got]);
    // The KV cache agrees with seq.tokens: the continuation is the uninterrupted run's.
    expect(await collect(seq, 5)).toEqual(ref.slice(3));
    context.dispose();
  });

  it("an aborted sequence's queued decode leaves the scheduler's queue undecoded", async () => {
    const context = model.createContext({ ...EXACT, nCtx: 512, nSeqMax: 2 });
    const ref = await reference(context, 4);
    const seq = context.createSequence();
    await seq.append(model.tokenize(PROMPT));
    const before = { tokens: seq.tokens, calls: context.stats.decodeCalls };
    const controller = new AbortController();
    const gen = seq.generate({ maxTokens: 4, stop: { eog: false }, signal: controller.signal });
    const first = gen.next(); // queues the first token's decode (flushed on the next turn of the loop)
    controller.abort();
    await expect(first).rejects.toThrow(AbortError);
    await new Promise((r) => setImmediate(r));
    expect(context.stats.decodeCalls).toBe(before.calls);
    expect(seq.tokens).toEqual(before.tokens);
    expect(await collect(seq, 4)).toEqual(ref);
    context.dispose();
  });

  it('an abort while a step decodes on a worker thread: that token leaves again, and the run continues as if uninterrupted', async () => {
    const context = model.createContext({ ...EXACT, nCtx: 512, nSeqMax: 2, decodeOffThread: true });
    const ref = await reference(context, 6);
    const seq = context.createSequence();
    const prompt = model.tokenize(PROMPT);
    await seq.append(prompt);
    const controller = new AbortController();
    const gen = seq.generate({ maxTokens: 6, stop: { eog: false }, signal: controller.signal });
    const a = await gen.next();
    const b = await gen.next();
    const third = gen.next();
    const working = await untilWorking(context); // the flush has handed the decode to a worker
    controller.abort();
    await expect(third).rejects.toThrow(AbortError);
    expect(working).toBe(true);
    const got = [a.value!.token, b.value!.token];
    expect(got).toEqual(ref.slice(0, 2));
    expect(seq.tokens).toEqual([...prompt, ...got]);
    expect(await collect(seq, 4)).toEqual(ref.slice(2));
    context.dispose();
  });

  it('an aborted append leaves the sequence as it was, even when its decode had started; an aborted signal refuses at once', async () => {
    const context = model.createContext({ ...EXACT, nCtx: 1024, nSeqMax: 2, nBatch: 64, decodeOffThread: true });
    const seq = context.createSequence();
    const head = model.tokenize('A head. ');
    await seq.append(head);
    const long = model.tokenize(PROMPT.repeat(4));
    expect(long.length).toBeGreaterThan(64); // two chunks at least
    const controller = new AbortController();
    const appending = seq.append(long, { signal: controller.signal });
    expect(await untilWorking(context)).toBe(true);
    controller.abort();
    await expect(appending).rejects.toThrow(/append\(\) was aborted: the sequence holds what it held before/);
    expect(seq.tokens).toEqual(head);
    await expect(seq.append(long, { signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
    await expect(seq.generate({ maxTokens: 2, signal: AbortSignal.abort() }).next()).rejects.toThrow(AbortError);
    expect(seq.tokens).toEqual(head);
    // The KV cache agrees: appending again gives the logits of a fresh sequence that was never aborted.
    const again = await seq.append(long);
    const fresh = context.createSequence();
    await fresh.append(head);
    const direct = await fresh.append(long);
    expect(maxAbsDiff(again.logits, direct.logits)).toBeLessThan(1e-5);
    context.dispose();
  });
});

describe('an abort stops a decode running on a worker thread', () => {
  it('between graph nodes, with the batch taken out of the KV cache', async () => {
    const wide = LlamaModel.load(widePath);
    try {
      const context = wide.createContext({ ...EXACT, nCtx: 4096, nSeqMax: 2, nBatch: 2048, threads: 1 });
      const seq = context.createSequence();
      const head = wide.tokenize('A head. ');
      await seq.append(head);
      const long = Array.from({ length: 2048 }, (_, i) => 65 + (i % 26));
      const controller = new AbortController();
      const appending = seq.append(long, { signal: controller.signal });
      expect(await untilWorking(context)).toBe(true);
      controller.abort();
      await expect(appending).rejects.toThrow(AbortError);
      expect(context.stats.decodesAborted).toBe(1); // stopped, not run to its end
      expect(seq.tokens).toEqual(head);
      const tail = wide.tokenize(PROMPT);
      const after = await seq.append(tail);
      const fresh = context.createSequence();
      await fresh.append(head);
      expect(maxAbsDiff(after.logits, (await fresh.append(tail)).logits)).toBeLessThan(1e-5);
      context.dispose();
    } finally {
      wide.dispose();
    }
  });
});

describe('decodes off the main thread', () => {
  it('give the same logits and taps as on it, while the event loop keeps turning', async () => {
    const ids = model.tokenize(PROMPT.repeat(3));
    expect(ids.length).toBeGreaterThanOrEqual(32); // an 'auto' prefill
    const run = async (decodeOffThread: boolean) => {
      const context = model.createContext({ ...EXACT, nCtx: 512, nSeqMax: 1, decodeOffThread });
      const seq = context.createSequence();
      let turns = 0;
      let busy = true;
      const spin = () => {
        if (!busy) return;
        turns++;
        setImmediate(spin);
      };
      const appending = seq.append(ids, { taps: { layers: [1, 'final'], positions: [0, 10, ids.length - 1] } });
      setImmediate(spin);
      const r = await appending;
      busy = false;
      context.dispose();
      return { r, turns };
    };
    const here = await run(false);
    const worker = await run(true);
    expect(Array.from(worker.r.logits)).toEqual(Array.from(here.r.logits));
    for (const layer of [1, 'final'] as const) expect(Array.from(worker.r.hidden.get(layer)!)).toEqual(Array.from(here.r.hidden.get(layer)!));
    expect(here.turns).toBe(0); // on the main thread the decode holds the loop
    expect(worker.turns).toBeGreaterThan(0);
  });

  it('fork, truncate and dispose made during a worker decode wait for it, and keep their meaning', async () => {
    const context = model.createContext({ ...EXACT, nCtx: 1024, nSeqMax: 4, decodeOffThread: true });
    const a = context.createSequence();
    await a.append(model.tokenize(PROMPT));
    const b = context.createSequence();
    const appending = b.append(model.tokenize(PROMPT.repeat(3)));
    expect(await untilWorking(context)).toBe(true);
    const child = a.fork(); // the KV copy waits for b's decode
    a.truncate(a.length - 2);
    const gone = context.createSequence();
    gone.dispose();
    await appending;
    // The fork holds a's tokens from before the truncate, and continues as a fresh sequence with them would.
    const fresh = context.createSequence();
    await fresh.append(model.tokenize(PROMPT));
    const next = async (s: Sequence) => {
      const out: number[] = [];
      for await (const t of s.generate({ maxTokens: 3, stop: { eog: false } })) out.push(t.token);
      return out;
    };
    expect(child.tokens).toEqual(fresh.tokens);
    expect(await next(child)).toEqual(await next(fresh));
    context.dispose();
  });
});

describe('threads', () => {
  it('are range-checked to 1..2 x cores, with the range in the message', () => {
    const cores = availableCores();
    expect(() => resolveThreads(0)).toThrow(LynxEngineUsageError);
    expect(() => resolveThreads(2 * cores + 1)).toThrow(`threads must be an integer from 1 to ${2 * cores} (2 x the ${cores} available cores), got ${2 * cores + 1}`);
    expect(() => resolveThreads(1.5)).toThrow(LynxEngineUsageError);
    expect(resolveThreads(1)).toBe(1);
    expect(resolveThreads(2 * cores)).toBe(2 * cores);
    expect(() => model.createContext({ threads: 1000 })).toThrow(LynxEngineUsageError);
    const saved = process.env.LYNX_THREADS;
    try {
      process.env.LYNX_THREADS = '0';
      expect(() => resolveThreads()).toThrow(/^LYNX_THREADS must be an integer from 1 to/);
      process.env.LYNX_THREADS = '1';
      expect(resolveThreads()).toBe(1);
      delete process.env.LYNX_THREADS;
      expect(resolveThreads()).toBe(cores);
    } finally {
      if (saved === undefined) delete process.env.LYNX_THREADS;
      else process.env.LYNX_THREADS = saved;
    }
  });

  it('above the core count draw one warning per count', async () => {
    const warnings: Error[] = [];
    const listen = (w: Error) => warnings.push(w);
    process.on('warning', listen);
    try {
      const n = availableCores() + 1;
      expect(resolveThreads(n)).toBe(n);
      resolveThreads(n);
      resolveThreads(availableCores());
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', listen);
    }
    const n = availableCores() + 1;
    const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'LYNX_THREADS_ABOVE_CORES' && w.message.startsWith(`${n} threads`));
    expect(ours).toHaveLength(1);
    expect(ours[0]!.message).toMatch(/threads on \d+ available cores: .* use at most \d+/);
  });
});

describe('signals', () => {
  it('a SIGTERM handler runs while a prefill decodes, and exiting then does not crash', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/helpers/engine-signal-probe.ts'), widePath], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let done = false;
    void exited.then(() => (done = true));
    while (!out.includes('decoding') && !done) await new Promise((r) => setTimeout(r, 20));
    // Signals that land between two decodes are counted and ignored by the child; it leaves on one that lands during one.
    while (!done) {
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await exited, `${out}\n${err}`).toBe(130);
    const report = JSON.parse(out.trim().split('\n').pop()!) as { duringDecode: boolean; decodeCalls: number };
    expect(report.duringDecode).toBe(true);
  });
});
