/**
 * The demo model's training data: traces rendered as the model will see them at inference (the chat template with
 * the generation prompt, then the completion and the end-of-sentence token), tokenized by the demo tokenizer and
 * packed into fixed-length windows.
 *
 * Reproducible from a seed; only problems of the `train` split are used, so the held-out parts (test, calibration,
 * probe) never appear in training, not even told with other names.
 */
import { Template } from '@huggingface/jinja';
import { InvalidInputError } from '../util/errors.js';
import { fnv1a, problemStream, type DemoProblem } from '../tasks/demo/problems.js';
import { generateTrace, traceRng, type Trace, type TraceOptions } from './traces.js';
import { CHAT_TEMPLATE, DemoTokenizer, SPECIAL, trainBpe, type TokenizerSpec } from './tokenizer.js';

let chatTemplate: Template | null = null;

/** The chat template rendered for one user turn, with the generation prompt (`...<｜Assistant｜><think>\n`). */
export function renderDemoPrompt(userContent: string): string {
  chatTemplate ??= new Template(CHAT_TEMPLATE);
  return chatTemplate.render({
    messages: [{ role: 'user', content: userContent }],
    add_generation_prompt: true,
    bos_token: SPECIAL.bos,
    eos_token: SPECIAL.eos,
  });
}

/** One training example as text: the prompt the engine would feed and the completion the model should write. */
export function exampleText(trace: Trace): { prompt: string; completion: string } {
  return { prompt: renderDemoPrompt(trace.prompt), completion: trace.completion };
}

export interface TokenizedExample {
  /** All tokens: BOS, prompt, completion, EOS. */
  ids: number[];
  /** Number of prompt tokens (the completion starts here). */
  promptTokens: number;
}

/**
 * Tokenize a trace as one sequence. The prompt is tokenized on its own, exactly as the engine does before generating,
 * and the completion after it; the check below guarantees the model is trained on the same token boundary it will
 * meet at inference.
 */
export function tokenizeExample(tok: DemoTokenizer, trace: Trace): TokenizedExample {
  const { prompt, completion } = exampleText(trace);
  const promptIds = tok.encode(prompt);
  const all = tok.encode(prompt + completion);
  for (let i = 0; i < promptIds.length; i++) {
    if (all[i] !== promptIds[i]) throw new Error(`internal: prompt and completion of ${trace.problem.id} merge across their boundary`);
  }
  all.push(tok.eos);
  return { ids: all, promptTokens: promptIds.length };
}

/** Seed and size of the texts the shipped tokenizer is trained on. */
export const TOKENIZER_SEED = 7;
export const TOKENIZER_TRACES = 4000;
export const TOKENIZER_VOCAB = 1024;

/**
 * The demo tokenizer: BPE trained on `traces` rendered training examples from `seed`, at most `vocabSize` tokens
 * (merging stops earlier when no pair occurs twice). Deterministic.
 */
export function buildDemoTokenizer(opts: { seed?: number; traces?: number; vocabSize?: number; trace?: Partial<TraceOptions> } = {}): DemoTokenizer {
  const isDefault = opts.seed === undefined && opts.traces === undefined && opts.vocabSize === undefined && opts.trace === undefined;
  if (isDefault) return (defaultTokenizer ??= new DemoTokenizer(trainDemoTokenizerSpec()));
  return new DemoTokenizer(trainDemoTokenizerSpec(opts));
}

/** The default tokenizer is trained once per process (a few seconds). */
let defaultTokenizer: DemoTokenizer | undefined;

export function trainDemoTokenizerSpec(opts: { seed?: number; traces?: number; vocabSize?: number; trace?: Partial<TraceOptions> } = {}): TokenizerSpec {
  const seed = opts.seed ?? TOKENIZER_SEED;
  const texts: string[] = [];
  const stream = problemStream({ seed });
  for (let i = 0; i < (opts.traces ?? TOKENIZER_TRACES); i++) {
    const p = stream.next().value as DemoProblem;
    const { prompt, completion } = exampleText(generateTrace(p, traceRng(seed, p), opts.trace));
    texts.push(prompt + completion);
  }
  return trainBpe(texts, { vocabSize: opts.vocabSize ?? TOKENIZER_VOCAB });
}

export interface CorpusOptions {
  seed: number;
  /** Window length: every training sequence has exactly this many tokens. Default 512. */
  nCtx?: number;
  /** Number of windows to fill. */
  nSequences: number;
  levels?: readonly number[];
  trace?: Partial<TraceOptions>;
  /**
   * Which predicted tokens carry loss: 'completion' (what the model writes after the generation prompt, EOS
   * included) or 'all' (prompt text too). Default 'completion'.
   */
  loss?: 'completion' | 'all';
  /** Windows kept open while packing; more packs tighter. Default 8. */
  openWindows?: number;
}

export interface Corpus {
  nCtx: number;
  nSequences: number;
  /** nSequences x nCtx token ids, row-major. Unused tail positions hold the pad token. */
  tokens: Int32Array;
  /** Next-token targets, same shape; -1 where no loss is taken (padding, after EOS, masked prompt). */
  labels: Int32Array;
  /** Traces used, with the window and offset each went to. */
  examples: { problemId: string; level: number; window: number; offset: number; length: number; promptTokens: number; correct: boolean }[];
  stats: {
    traces: number;
    /** Traces longer than a window, skipped. */
    droppedTooLong: number;
    /** Share of positions holding real tokens. */
    fill: number;
    /** Positions with a label (loss taken). */
    labelled: number;
  };
}

/**
 * Build a packed corpus: whole examples (BOS ... EOS) placed first-fit into fixed windows, the rest padded. Each
 * window is independent at training time (positions restart at 0), and a packed example attends to the earlier ones
 * in its window only through causal attention, as in ordinary packed pre-training.
 */
export function buildCorpus(tok: DemoTokenizer, opts: CorpusOptions): Corpus {
  const nCtx = opts.nCtx ?? 512;
  const loss = opts.loss ?? 'completion';
  const openLimit = opts.openWindows ?? 8;
  if (!Number.isInteger(nCtx) || nCtx < 64) throw new InvalidInputError(`context length ${nCtx} is too small: use at least 64 tokens`);
  if (!Number.isInteger(opts.nSequences) || opts.nSequences < 1) throw new InvalidInputError(`number of sequences must be a positive integer, got ${opts.nSequences}`);
  if (loss !== 'completion' && loss !== 'all') throw new InvalidInputError(`unknown loss mode '${loss as string}': use completion or all`);

  const tokens = new Int32Array(opts.nSequences * nCtx).fill(tok.pad);
  const labels = new Int32Array(opts.nSequences * nCtx).fill(-1);
  const used = new Int32Array(opts.nSequences);
  const examples: Corpus['examples'] = [];
  let droppedTooLong = 0;
  let traces = 0;
  // Windows still taking examples, in creation order; a window closes when nothing more fits or too many are open.
  const open: number[] = [];
  let nextWindow = 0;
  const stream = problemStream({ seed: opts.seed, levels: opts.levels });
  const traceSeed = fnv1a('traces', opts.seed);

  while (nextWindow < opts.nSequences || open.length > 0) {
    const p = stream.next().value as DemoProblem;
    const trace = generateTrace(p, traceRng(traceSeed, p), opts.trace);
    const ex = tokenizeExample(tok, trace);
    traces++;
    if (ex.ids.length > nCtx) {
      droppedTooLong++;
      continue;
    }
    let w = open.find((i) => nCtx - used[i]! >= ex.ids.length);
    if (w === undefined) {
      if (nextWindow >= opts.nSequences) {
        // No new windows left: the fullest open window can take nothing more of this size; close it.
        open.shift();
        continue;
      }
      w = nextWindow++;
      open.push(w);
      if (open.length > openLimit) open.shift();
    }
    const offset = used[w]!;
    const base = w * nCtx + offset;
    tokens.set(ex.ids, base);
    for (let i = 0; i + 1 < ex.ids.length; i++) {
      if (loss === 'all' || i + 1 >= ex.promptTokens) labels[base + i] = ex.ids[i + 1]!;
    }
    used[w] = offset + ex.ids.length;
    examples.push({ problemId: p.id, level: p.level, window: w, offset, length: ex.ids.length, promptTokens: ex.promptTokens, correct: trace.correct });
    if (nCtx - used[w]! < 48) open.splice(open.indexOf(w), 1);
  }
  let real = 0;
  for (const u of used) real += u;
  let labelled = 0;
  for (const l of labels) if (l >= 0) labelled++;
  return {
    nCtx,
    nSequences: opts.nSequences,
    tokens,
    labels,
    examples,
    stats: { traces, droppedTooLong, fill: real / tokens.length, labelled },
  };
}

/**
 * Targets for a trainer that takes loss at every position. llama.cpp's `llama_opt_epoch` does, and has no ignore
 * index: it writes a one-hot row per target, and a negative target fails its bounds assertion and aborts the whole
 * process. Positions without a label get the pad token as target: build the corpus with `loss: 'all'` for it, so that
 * only padding (and the position after EOS) predicts pad, which never matters at inference because generation stops
 * at EOS.
 */
export function labelsEverywhere(corpus: Corpus, padId: number): Int32Array {
  const out = new Int32Array(corpus.labels.length);
  for (let i = 0; i < out.length; i++) out[i] = corpus.labels[i]! >= 0 ? corpus.labels[i]! : padId;
  return out;
}
