/**
 * One trace written by two models, as one `GeneratorSequence` in the small model's vocabulary: every method (the full
 * rollout, a budget, LYNX with its probe on the small model's hidden states, DEER, ...) runs on it unchanged, while a
 * composition policy decides inside `generate` which model writes each stretch.
 *
 * Each model keeps its own sequence (its KV cache) and reads only what it has not read yet, on demand: the big model
 * prefills the small model's new text (without the tags and hint it must not see) when it takes over, the small model
 * prefills the big model's chunks when it must judge them or tap them. SplitReason instead resends the whole text to
 * a server on every call. Token ids pass directly when the two vocabularies are the same, text otherwise.
 *
 * Bookkeeping: `entries` is the trace (prompt included) in the small's vocabulary, with who wrote each token and what
 * the big model sees of it. The small's sequence always holds a prefix of `entries` (`smallSynced` of them; during a
 * big chunk it may briefly hold more, which `settle` drops). The big's sequence holds the big view of the first
 * `bigSynced` entries; `bigAt[h]` is its length at entry h where the two align (every entry when the vocabularies are
 * the same, the ends of big tokens and synced runs otherwise), so a truncate or fork anywhere finds a point to cut the
 * big cache back to and re-reads the rest from text.
 */
import type { AppendOptions, GenerateOptions, GeneratedToken, TapLayer } from '../../engine/index.js';
import { LynxEngineUsageError, DisposedError } from '../../engine/index.js';
import type { AppendResult, Generator, GeneratorSequence, Vocabulary } from '../../backends/generator.js';
import { UnsupportedError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import type { Author, CompositionPolicy, HandBack, Speculate, Subselect, TraceState, Turn } from './policy.js';
import { tagVerdict } from './protocol.js';
import type { ComposeStats } from './stats.js';

/** What the big model reads of one entry: the token itself, nothing (a tag), or part of its text. */
type BigView = 'same' | 'hidden' | { text: string };

interface Entry {
  token: number;
  /** The entry's text in the small's vocabulary (complete UTF-8 characters, as `generate` yields them). */
  piece: string;
  author: Author;
  big: BigView;
}

/** What a composed generator's sequences share. */
export interface ComposeShared {
  small: Generator;
  big: Generator;
  policy: CompositionPolicy;
  /** The two models tokenize identically: ids pass directly. */
  sameVocab: boolean;
  /** Per-problem seed of the policy's coins and of sampling where the caller gives none. */
  seed: number;
  /** The prompt as each model reads it: a first append equal to `small` is read by the big model as `big`. */
  prompts?: { small: readonly number[]; big: readonly number[] };
  work: { small: ComposeStats['small']; big: ComposeStats['big'] };
}

/** One `generate` call's running state. */
interface Run {
  opts: GenerateOptions;
  budget: number;
  produced: number;
  /** Text yielded by this call so far (what the caller's `tapWhen` is given, cumulatively). */
  text: string;
  seedBase: number;
  wantsTaps: boolean;
}

type TurnEnd = { stopped: GeneratedToken } | 'done';

/** A fork that runs turns on its own (a logprob-subselect candidate, a SpecReason step draft). */
interface Draft {
  seq: ComposedSequence;
  stop?: GeneratedToken;
}

/** Big tokens per small prefill when only taps (no hand-back checks) need the small model to read them. */
const TAP_CHUNK = 8;

export class ComposedSequence implements GeneratorSequence {
  private entries: Entry[] = [];
  /** Length of the first append (the prompt); generated tokens come after it. */
  private promptLength = -1;
  /** The big model's own rendering of the prompt, when the first append was the known prompt pair. */
  private bigPrompt: readonly number[] | undefined;
  private small: GeneratorSequence | undefined;
  private smallSynced = 0;
  private big: GeneratorSequence | undefined;
  private bigSynced = 0;
  private bigAt: (number | undefined)[] = [0];
  private busy = false;
  private isDisposed = false;
  /** SpecReason: the big model's score of each step (-1: rejected and rewritten), for the records. */
  readonly stepScores: number[] = [];

  constructor(private readonly shared: ComposeShared) {}

  get vocab(): Vocabulary {
    return this.shared.small.vocab;
  }

  get length(): number {
    return this.entries.length;
  }

  get tokens(): number[] {
    return this.entries.map((e) => e.token);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** Who wrote each generated token (after the prompt), in order. */
  generatedAuthors(): Author[] {
    return this.entries.slice(Math.max(0, this.promptLength)).map((e) => e.author);
  }

  /** The two models' copies, for tests and the trace viewer: token ids each model's cache holds now. */
  caches(): { small: number[]; big: number[]; smallSynced: number; bigSynced: number } {
    return { small: this.small?.tokens ?? [], big: this.big?.tokens ?? [], smallSynced: this.smallSynced, bigSynced: this.bigSynced };
  }

  /** The text the big model should have read for the first `n` entries (tags and hint left out). */
  bigViewText(n = this.entries.length): string {
    const start = this.bigPrompt && n >= this.promptLength ? this.promptLength : 0;
    const head = start > 0 ? this.shared.big.vocab.detokenize([...this.bigPrompt!]) : '';
    return head + this.entries.slice(start, n).map(visibleText).join('');
  }

  async append(tokens: readonly number[], opts: AppendOptions = {}): Promise<AppendResult> {
    this.enter();
    try {
      if (tokens.length === 0) throw new LynxEngineUsageError('append() needs at least one token');
      const start = this.entries.length;
      const prompts = this.shared.prompts;
      const isPrompt = start === 0 && prompts !== undefined && sameTokens(tokens, prompts.small);
      const pieces = piecesOf(this.vocab, tokens);
      tokens.forEach((token, i) => this.entries.push({ token, piece: pieces[i]!, author: 'input', big: isPrompt ? 'hidden' : 'same' }));
      if (start === 0) {
        this.promptLength = tokens.length;
        if (isPrompt) this.bigPrompt = prompts!.big;
      }
      const layers = opts.taps?.layers ?? [];
      if (layers.length === 0) return { hidden: new Map() };
      const positions = (opts.taps?.positions ?? [tokens.length - 1]).map((p) => start + p);
      return { hidden: await this.syncSmall({ layers, positions }) };
    } finally {
      this.busy = false;
    }
  }

  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    this.enter();
    const run: Run = {
      opts,
      budget: opts.maxTokens,
      produced: 0,
      text: '',
      seedBase: opts.sampler?.seed ?? this.shared.seed,
      wantsTaps: (opts.tapLayers?.length ?? 0) > 0,
    };
    try {
      if (this.entries.length === 0) throw new LynxEngineUsageError('generate() needs a prompt: append tokens first');
      if (run.wantsTaps && !this.shared.small.capabilities.hiddenStates) {
        throw new UnsupportedError(`the ${this.shared.small.name} small model gives no hidden states to tap`);
      }
      let idle = 0;
      while (run.produced < run.budget) {
        const before = run.produced;
        const end = yield* this.turn(this.shared.policy.nextTurn(this.state()), run);
        if (end !== 'done') {
          yield end.stopped;
          return;
        }
        // A turn that writes nothing twice in a row would loop forever (a policy handing over with no room).
        idle = run.produced === before ? idle + 1 : 0;
        if (idle >= 2) return;
      }
    } finally {
      this.busy = false;
      this.settle();
    }
  }

  fork(): ComposedSequence {
    this.check();
    const child = new ComposedSequence(this.shared);
    child.entries = this.entries.map((e) => ({ ...e }));
    child.promptLength = this.promptLength;
    child.bigPrompt = this.bigPrompt;
    if (this.small && this.smallSynced > 0) {
      child.small = this.small.fork();
      if (child.small.length > this.smallSynced) child.small.truncate(this.smallSynced);
      child.smallSynced = this.smallSynced;
    }
    const bigLength = this.bigAt[this.bigSynced]!;
    if (this.big && bigLength > 0) {
      child.big = this.big.fork();
      if (child.big.length > bigLength) child.big.truncate(bigLength);
      child.bigSynced = this.bigSynced;
      child.bigAt = this.bigAt.slice(0, this.bigSynced + 1);
    }
    return child;
  }

  truncate(length: number): void {
    this.check();
    if (this.busy) throw new LynxEngineUsageError('truncate() while this sequence is generating');
    if (!Number.isInteger(length) || length < 0 || length > this.entries.length) {
      throw new LynxEngineUsageError(`cannot truncate a sequence of ${this.entries.length} tokens to ${length}`);
    }
    this.entries.length = length;
    if (length < this.promptLength) {
      // Cut into the prompt: from here on the big model reads the small's tokens as they are.
      for (const e of this.entries) e.big = 'same';
      this.promptLength = length === 0 ? -1 : length;
      this.bigPrompt = undefined;
      this.bigSynced = 0;
      this.bigAt = [0];
    }
    this.smallSynced = Math.min(this.smallSynced, length);
    this.bigSynced = this.alignedAtOrBefore(Math.min(this.bigSynced, length));
    this.bigAt.length = this.bigSynced + 1;
    this.settle();
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.small?.dispose();
    this.big?.dispose();
  }

  // ---- the policy's view and the turns ----

  private state(): TraceState {
    const generated = this.entries.slice(Math.max(0, this.promptLength));
    let trailingBig = 0;
    for (let i = generated.length - 1; i >= 0 && generated[i]!.author === 'big'; i--) trailingBig++;
    return { generated: generated.length, text: generated.map((e) => e.piece).join(''), trailingBig, seed: this.shared.seed };
  }

  private turn(turn: Turn, run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    if (turn.model === 'small') return this.smallTurn(turn, run);
    if (turn.model === 'big') return this.bigTurn(turn, run);
    if (turn.model === 'speculate') return this.speculateTurn(turn.speculate, run);
    return this.selectTurn(turn.subselect, run);
  }

  /** The sampler seed of a turn: the caller's for the trace's first turn (so one model alone samples exactly as it
   * would without composition), a derived one for every later turn. */
  private turnSeed(run: Run, model: string): number {
    const first = this.entries.length === this.promptLength;
    return first ? run.seedBase : Rng.derive(run.seedBase, `${model}@${this.entries.length}`).nextU32();
  }

  private async *smallTurn(turn: Extract<Turn, { model: 'small' }>, run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    await this.syncSmall();
    const o = run.opts;
    const textBefore = run.text;
    const turnStart = this.entries.length;
    let turnText = '';
    const inner = this.small!.generate({
      maxTokens: Math.min(turn.maxTokens, run.budget - run.produced),
      sampler: o.sampler ? { ...o.sampler, seed: this.turnSeed(run, 'small') } : undefined,
      stop: o.stop,
      tapLayers: o.tapLayers,
      // The caller's tapWhen reads the text of its own generate call, which spans many turns.
      tapWhen: o.tapWhen ? (token, text) => o.tapWhen!(token, textBefore + text) : undefined,
      logprobs: o.logprobs,
      topLogprobs: o.topLogprobs,
    });
    for await (const t of inner) {
      this.shared.work.small.decoded++;
      if (t.stopped) return { stopped: this.emit(t, run) };
      this.entries.push({ token: t.token, piece: t.text, author: 'small', big: 'same' });
      this.smallSynced = this.entries.length;
      const seen = turnText.length;
      turnText += t.text;
      this.hideFromBig(turnStart, turnText, seen);
      yield this.emit(t, run);
      if (turn.until !== undefined && turnText.includes(turn.until)) return 'done';
    }
    return 'done';
  }

  private async *bigTurn(turn: Extract<Turn, { model: 'big' }>, run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    const room = Math.min(turn.maxTokens, run.budget - run.produced);
    if (room <= 0) {
      if (turn.closeWith !== undefined && run.produced < run.budget) {
        yield* this.insertTokens(this.vocab.tokenize(turn.closeWith, { addSpecial: false, parseSpecial: false }), run);
      }
      return 'done';
    }
    await this.syncBig();
    const big = this.big!;
    const o = run.opts;
    const sameVocab = this.shared.sameVocab;
    const chunkSize = turn.handBack?.every ?? (run.wantsTaps ? TAP_CHUNK : 1);
    const iterator = big.generate({
      maxTokens: room,
      sampler: o.sampler ? { ...o.sampler, seed: this.turnSeed(run, 'big') } : undefined,
      stop: { eog: o.stop?.eog ?? true },
      logprobs: sameVocab && o.logprobs,
      topLogprobs: sameVocab ? o.topLogprobs : undefined,
    })[Symbol.asyncIterator]();
    let written = 0;
    let turnText = '';
    try {
      for (;;) {
        // Collect the next chunk of big tokens (each already in the big cache, except a stop token).
        const chunk: GeneratedToken[] = [];
        let stop: GeneratedToken | undefined;
        while (chunk.length < chunkSize) {
          const next = await iterator.next();
          if (next.done) break;
          this.shared.work.big.decoded++;
          if (next.value.stopped) {
            stop = next.value;
            break;
          }
          chunk.push(next.value);
        }
        // The chunk in the small's vocabulary: one group of small tokens per big token.
        const groups = chunk.map((t) => (sameVocab ? [t.token] : this.vocab.tokenize(t.text, { addSpecial: false, parseSpecial: true })));
        const small = groups.flat();
        // The engine's own text of each big token (its decoder runs over the whole turn, so a character split across
        // tokens comes out as generate gives it); in another vocabulary the groups are whole characters already.
        const pieces = sameVocab ? chunk.map((t) => t.text) : piecesOf(this.vocab, small);
        let hidden: Map<TapLayer, Float32Array> | undefined;
        const smallReads = (turn.handBack !== undefined || run.wantsTaps) && small.length > 0;
        if (smallReads) {
          await this.syncSmall();
          const r = await this.small!.append(small, run.wantsTaps ? { taps: { layers: o.tapLayers!, positions: small.map((_, i) => i) } } : undefined);
          this.shared.work.small.prefilled += small.length;
          hidden = r.hidden;
        }
        let keep = small.length;
        let close: number[] | undefined;
        if (turn.handBack && small.length > 0) {
          const found = await this.firstClosingPrefix(small.length, turn.handBack);
          if (found) {
            keep = found.prefix;
            close = found.tokens;
          }
        }
        if (close) {
          // The segment ends here: the big model's tail is dropped from both caches.
          await iterator.return?.();
          if (keep < small.length) this.small!.truncate(this.smallSynced + keep);
        }
        // Yield the kept tokens; the big cache stays aligned at the end of every whole big token kept.
        const bigBase = this.bigAt[this.bigSynced]!;
        for (let g = 0, j = 0; g < groups.length; g++) {
          const take = Math.min(groups[g]!.length, keep - j);
          for (let k = 0; k < take; k++, j++) {
            const token = small[j]!;
            this.entries.push({ token, piece: pieces[j]!, author: 'big', big: 'same' });
            if (smallReads) this.smallSynced = this.entries.length;
            const src = sameVocab ? chunk[j]! : undefined;
            yield this.emit(
              { token, index: 0, text: pieces[j]!, stopped: false, logprob: src?.logprob, topLogprobs: src?.topLogprobs, hidden: this.tapFor(run, token, pieces[j]!, hidden, j) },
              run,
            );
            turnText += pieces[j]!;
          }
          if (take < groups[g]!.length) break;
          this.bigSynced = this.entries.length;
          this.bigAt[this.bigSynced] = bigBase + g + 1;
          // A step ends the turn (SpecReason): what the big model wrote after it is dropped.
          if (turn.until !== undefined && turnText.includes(turn.until)) {
            await iterator.return?.();
            this.settle();
            return 'done';
          }
        }
        written += keep;
        if (close) {
          this.settle();
          yield* this.insertTokens(close, run);
          return 'done';
        }
        if (stop) {
          const token = sameVocab ? stop.token : (this.vocab.info.special.eos ?? stop.token);
          return { stopped: this.emit({ ...stop, token, logprob: sameVocab ? stop.logprob : undefined, topLogprobs: sameVocab ? stop.topLogprobs : undefined }, run) };
        }
        if (chunk.length < chunkSize || written >= room) break;
      }
    } finally {
      await iterator.return?.();
    }
    if (turn.closeWith !== undefined && written >= turn.maxTokens && run.produced < run.budget) {
      this.settle();
      yield* this.insertTokens(this.vocab.tokenize(turn.closeWith, { addSpecial: false, parseSpecial: false }), run);
    }
    return 'done';
  }

  /**
   * SplitReason's hand-back check: would the small model close the big segment after some prefix of the chunk it has
   * just read? Every prefix is a fork of the small sequence cut after it; all forks continue greedily together (one
   * batched decode per step, each stopping as soon as its text can no longer be the tag). The first prefix wins.
   */
  private async firstClosingPrefix(chunkLength: number, handBack: HandBack): Promise<{ prefix: number; tokens: number[] } | null> {
    const small = this.small!;
    const base = this.smallSynced;
    const detect = handBack.detect ?? handBack.tag;
    const maxTokens = this.vocab.tokenize(detect, { addSpecial: false, parseSpecial: false }).length + 2;
    const forks = Array.from({ length: chunkLength }, (_, j) => {
      const f = small.fork();
      if (j < chunkLength - 1) f.truncate(base + j + 1);
      return f;
    });
    try {
      const verdicts = await Promise.all(
        forks.map(async (f) => {
          let text = '';
          for await (const t of f.generate({ maxTokens, sampler: { temperature: 0 } })) {
            this.shared.work.small.decoded++;
            this.shared.work.small.probeTokens++;
            if (t.stopped) return null;
            text += t.text;
            const v = tagVerdict(text, detect);
            if (v !== 'undecided') return v === 'closes' ? text : null;
          }
          return null;
        }),
      );
      const j = verdicts.findIndex((v) => v !== null);
      if (j < 0) return null;
      // The probe's leading whitespace, then the whole tag (SplitReason appends `pre + BIG_CLOSE`).
      const pre = /^\s*/.exec(verdicts[j]!)![0];
      return { prefix: j + 1, tokens: this.vocab.tokenize(pre + handBack.tag, { addSpecial: false, parseSpecial: false }) };
    } finally {
      for (const f of forks) f.dispose();
    }
  }

  /** Tokens the small model writes without sampling them here (a closing tag): appended to its cache, then yielded. */
  private async *insertTokens(tokens: readonly number[], run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    const n = Math.min(tokens.length, run.budget - run.produced);
    if (n <= 0) return 'done';
    const part = tokens.slice(0, n);
    await this.syncSmall();
    const r = await this.small!.append(part, run.wantsTaps ? { taps: { layers: run.opts.tapLayers!, positions: part.map((_, i) => i) } } : undefined);
    this.shared.work.small.prefilled += part.length;
    const pieces = piecesOf(this.vocab, part);
    const start = this.entries.length;
    let text = '';
    for (let j = 0; j < part.length; j++) {
      this.entries.push({ token: part[j]!, piece: pieces[j]!, author: 'small', big: 'same' });
      this.smallSynced = this.entries.length;
      const seen = text.length;
      text += pieces[j]!;
      this.hideFromBig(start, text, seen);
      yield this.emit({ token: part[j]!, index: 0, text: pieces[j]!, stopped: false, hidden: this.tapFor(run, part[j]!, pieces[j]!, r.hidden, j) }, run);
    }
    return 'done';
  }

  /**
   * SplitReason's logprob subselect: candidates are forks of this trace; each round the small model drafts on every
   * candidate, the big model scores every draft by its log-likelihood, the best survive (and the big model extends
   * them), until one is left. The winner's tokens are then this trace's.
   */
  private async *selectTurn(s: Subselect, run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    await this.syncSmall();
    await this.syncBig();
    const base = this.entries.length;
    let candidates: Draft[] = Array.from({ length: s.candidates }, () => ({ seq: this.fork() }));
    const drain = (c: Draft, turn: Turn, label: string) => this.draft(c, turn, run, base, label);
    try {
      for (let round = 0; candidates.length > 1 && round < 10; round++) {
        await Promise.all(candidates.map((c, j) => drain(c, { model: 'small', maxTokens: s.draftTokens }, `draft-${round}-${j}`)));
        const scores = await Promise.all(candidates.map((c) => c.seq.syncBig(true)));
        const order = candidates.map((c, j) => ({ c, score: scores[j]! })).sort((a, b) => b.score - a.score);
        const kept = Math.max(1, Math.floor(candidates.length / s.decay));
        for (const { c } of order.slice(kept)) c.seq.dispose();
        candidates = order.slice(0, kept).map((x) => x.c);
        if (s.bigTokens > 0) await Promise.all(candidates.map((c, j) => drain(c, { model: 'big', maxTokens: s.bigTokens }, `extend-${round}-${j}`)));
      }
      const winner = candidates[0]!;
      yield* this.adopt(winner.seq, base, run);
      return winner.stop ? { stopped: this.emit(winner.stop, run) } : 'done';
    } finally {
      for (const c of candidates) c.seq.dispose();
    }
  }

  /** Run a turn on a fork (a draft) without yielding to the caller; its tokens count against the call's budget. */
  private async draft(c: Draft, turn: Turn, run: Run, base: number, label: string): Promise<void> {
    const room = run.budget - run.produced - (c.seq.entries.length - base);
    if (c.stop || room <= 0) return;
    const inner: Run = { opts: { ...run.opts, tapLayers: undefined, tapWhen: undefined }, budget: room, produced: 0, text: '', seedBase: Rng.derive(run.seedBase, label).nextU32(), wantsTaps: false };
    const g = c.seq.turn(turn, inner);
    for (;;) {
      const r = await g.next();
      if (r.done) {
        if (r.value !== 'done') c.stop = r.value.stopped;
        break;
      }
    }
    c.seq.settle();
  }

  /**
   * SpecReason: the small model drafts one step (up to `stepEnd`) on a fork, the big model reads it and scores it 0-9
   * from a judge prompt on a fork of its own cache (one greedy token), and the step is kept when the score reaches the
   * threshold; otherwise the big model writes the step itself. Either way the big cache already holds the prefix.
   */
  private async *speculateTurn(s: Speculate, run: Run): AsyncGenerator<GeneratedToken, TurnEnd, void> {
    const base = this.entries.length;
    const draft: Draft = { seq: this.fork() };
    try {
      await this.draft(draft, { model: 'small', maxTokens: s.maxStepTokens, until: s.stepEnd }, run, base, `step-${base}`);
      const score = await draft.seq.judgeLastStep(s.judge);
      if (score >= s.threshold && draft.seq.entries.length > base) {
        this.stepScores.push(score);
        yield* this.adopt(draft.seq, base, run);
        return draft.stop ? { stopped: this.emit(draft.stop, run) } : 'done';
      }
    } finally {
      draft.seq.dispose();
    }
    this.stepScores.push(-1);
    return yield* this.bigTurn({ model: 'big', maxTokens: s.maxStepTokens, until: s.stepEnd }, run);
  }

  /** The big model's greedy score (0-9; 0 when it writes no digit) of the text so far followed by the judge prompt. */
  private async judgeLastStep(judge: string): Promise<number> {
    await this.syncBig();
    const fork = this.big!.fork();
    try {
      const prompt = this.shared.big.vocab.tokenize(judge, { addSpecial: false, parseSpecial: true });
      await fork.append(prompt);
      this.shared.work.big.prefilled += prompt.length;
      let text = '';
      for await (const t of fork.generate({ maxTokens: 1, sampler: { temperature: 0 } })) {
        this.shared.work.big.decoded++;
        text += t.text;
      }
      const digit = /^\s*(\d)/.exec(text);
      return digit ? Number(digit[1]) : 0;
    } finally {
      fork.dispose();
    }
  }

  /** Take over a fork's caches and replay its tokens after `base` as this trace's. */
  private async *adopt(winner: ComposedSequence, base: number, run: Run): AsyncGenerator<GeneratedToken, void, void> {
    this.small?.dispose();
    this.big?.dispose();
    this.small = winner.small;
    this.big = winner.big;
    winner.small = winner.big = undefined;
    const later = winner.entries.slice(base);
    const anchors = winner.bigAt;
    let smallHas = winner.smallSynced;
    const bigHas = winner.bigSynced;
    this.smallSynced = Math.min(smallHas, base);
    this.bigAt = this.bigAt.slice(0, this.bigSynced + 1);
    let hidden: Map<TapLayer, Float32Array> | undefined;
    if (run.wantsTaps && later.length > 0) {
      await this.syncSmall();
      hidden = (await this.small!.append(later.map((e) => e.token), { taps: { layers: run.opts.tapLayers!, positions: later.map((_, i) => i) } })).hidden;
      this.shared.work.small.prefilled += later.length;
      smallHas = base + later.length;
    }
    for (let j = 0; j < later.length; j++) {
      const e = later[j]!;
      this.entries.push(e);
      const h = this.entries.length;
      if (h <= smallHas) this.smallSynced = h;
      if (h <= bigHas && anchors[h] !== undefined) {
        this.bigSynced = h;
        this.bigAt[h] = anchors[h];
      }
      yield this.emit({ token: e.token, index: 0, text: e.piece, stopped: false, hidden: this.tapFor(run, e.token, e.piece, hidden, j) }, run);
    }
  }

  // ---- keeping the two caches in step ----

  /** Prefill what the small model has not read; with taps, return their hidden states at `positions` (entry indices). */
  private async syncSmall(taps?: { layers: TapLayer[]; positions: number[] }): Promise<Map<TapLayer, Float32Array>> {
    this.small ??= this.shared.small.createSequence();
    const s = this.small;
    // Positions to tap that the cache already holds are read again (a composed append of a prompt, tapped).
    if (taps && taps.positions.length > 0) this.smallSynced = Math.min(this.smallSynced, Math.min(...taps.positions));
    if (s.length > this.smallSynced) s.truncate(this.smallSynced);
    const from = this.smallSynced;
    const pending = this.entries.slice(from).map((e) => e.token);
    if (pending.length === 0) return new Map();
    const r = await s.append(pending, taps ? { taps: { layers: taps.layers, positions: taps.positions.map((p) => p - from) } } : undefined);
    this.shared.work.small.prefilled += pending.length;
    this.smallSynced = this.entries.length;
    return r.hidden;
  }

  /**
   * Prefill what the big model has not read (its view: no tags, its own prompt). With `score`, append token by token
   * and return the log-likelihood of what was read (logprob subselect); else 0.
   */
  private async syncBig(score = false): Promise<number> {
    this.big ??= this.shared.big.createSequence();
    const b = this.big;
    const base = this.bigAt[this.bigSynced]!;
    if (b.length > base) b.truncate(base);
    const bigVocab = this.shared.big.vocab;
    const groups: { tokens: number[]; end: number }[] = [];
    let h = this.bigSynced;
    if (this.bigPrompt && h < this.promptLength) {
      groups.push({ tokens: [...this.bigPrompt], end: this.promptLength });
      h = this.promptLength;
    }
    if (this.shared.sameVocab) {
      for (; h < this.entries.length; h++) {
        const e = this.entries[h]!;
        const tokens = e.big === 'same' ? [e.token] : e.big === 'hidden' ? [] : bigVocab.tokenize(e.big.text, { addSpecial: false, parseSpecial: false });
        groups.push({ tokens, end: h + 1 });
      }
    } else if (h < this.entries.length) {
      const text = this.entries.slice(h).map(visibleText).join('');
      groups.push({ tokens: text === '' ? [] : bigVocab.tokenize(text, { addSpecial: false, parseSpecial: true }), end: this.entries.length });
    }
    const flat = groups.flatMap((g) => g.tokens);
    let logLikelihood = 0;
    if (flat.length > 0) {
      if (score) logLikelihood = await this.appendScored(b, flat);
      else await b.append(flat);
      this.shared.work.big.prefilled += flat.length;
    }
    let length = base;
    for (const g of groups) {
      length += g.tokens.length;
      this.bigAt[g.end] = length;
    }
    this.bigSynced = this.entries.length;
    return logLikelihood;
  }

  /** Append tokens one at a time, summing each one's log-probability under the model before it. */
  private async appendScored(seq: GeneratorSequence, tokens: readonly number[]): Promise<number> {
    if (seq.length === 0) throw new LynxEngineUsageError('scoring needs a prefix in the big cache');
    // The logits after the cached prefix: decode its last token again.
    const last = seq.tokens[seq.length - 1]!;
    seq.truncate(seq.length - 1);
    let logits = (await seq.append([last])).logits;
    this.shared.work.big.prefilled++;
    let sum = 0;
    for (const t of tokens) {
      if (!logits) throw new UnsupportedError(`logprob subselect needs logits from the ${this.shared.big.name} big model's appends`);
      sum += logSoftmaxAt(logits, t);
      logits = (await seq.append([t])).logits;
    }
    return sum;
  }

  /** Drop what either cache holds beyond the entries it is known to hold. */
  private settle(): void {
    if (this.small && !this.small.disposed && this.small.length > this.smallSynced) this.small.truncate(this.smallSynced);
    if (this.big && !this.big.disposed) {
      this.bigSynced = this.alignedAtOrBefore(Math.min(this.bigSynced, this.entries.length));
      const length = this.bigAt[this.bigSynced]!;
      if (this.big.length > length) this.big.truncate(length);
    }
  }

  private alignedAtOrBefore(h: number): number {
    while (h > 0 && this.bigAt[h] === undefined) h--;
    return h;
  }

  /**
   * Mark the tags that end in the newly added text (`text` = the pieces of the entries from `start` on, of which the
   * first `seen` characters were there before) as unseen by the big model.
   */
  private hideFromBig(start: number, text: string, seen: number): void {
    for (const tag of this.shared.policy.hiddenFromBig) {
      for (let at = text.indexOf(tag, Math.max(0, seen - tag.length + 1)); at >= 0; at = text.indexOf(tag, at + 1)) {
        let offset = 0;
        for (let i = start; i < this.entries.length; i++) {
          const e = this.entries[i]!;
          const from = Math.max(at, offset);
          const to = Math.min(at + tag.length, offset + e.piece.length);
          if (from < to) {
            const kept = e.piece.slice(0, from - offset) + e.piece.slice(to - offset);
            e.big = kept === '' ? 'hidden' : { text: kept };
          }
          offset += e.piece.length;
        }
      }
    }
  }

  private tapFor(run: Run, token: number, piece: string, rows: Map<TapLayer, Float32Array> | undefined, j: number): Map<TapLayer, Float32Array> | undefined {
    if (!run.wantsTaps || !rows || rows.size === 0) return undefined;
    if (run.opts.tapWhen && !run.opts.tapWhen(token, run.text + piece)) return undefined;
    const n = this.vocab.info.nEmbd;
    return new Map([...rows].map(([layer, data]) => [layer, data.slice(j * n, (j + 1) * n)]));
  }

  private emit(t: GeneratedToken, run: Run): GeneratedToken {
    const out = { ...t, index: run.produced };
    run.produced++;
    run.text += t.text;
    return out;
  }

  private check(): void {
    if (this.isDisposed) throw new DisposedError('this composed sequence was disposed');
  }

  private enter(): void {
    this.check();
    if (this.busy) throw new LynxEngineUsageError('this composed sequence is busy: one append/generate at a time');
    this.busy = true;
  }
}

function visibleText(e: Entry): string {
  return e.big === 'same' ? e.piece : e.big === 'hidden' ? '' : e.big.text;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** Each token's text as `generate` yields it: complete UTF-8 characters, a split one with the token completing it. */
export function piecesOf(vocab: Vocabulary, tokens: readonly number[]): string[] {
  const decoder = new TextDecoder('utf-8');
  return tokens.map((t) => decoder.decode(vocab.tokenBytes(t), { stream: true }));
}

/** log softmax(logits)[token]. */
export function logSoftmaxAt(logits: Float32Array, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[token]! - max - Math.log(sum);
}
