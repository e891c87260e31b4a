/**
 * Generators whose "model" is a script: a function from the sequence's whole text to its next piece. They implement the
 * generator seam exactly (sequences, forks, truncation, taps), so composition can be tested where every token is known
 * in advance: tag detection, hand-back, segment caps, and whether each model's cache holds exactly its copy of the
 * text (a stale cache makes the script continue differently).
 *
 * Vocabularies are character-level plus optional multi-character tokens, so two scripted generators can share a
 * vocabulary (ids pass directly) or not (text passes).
 */
import type { GenerateOptions, GeneratedToken, TapLayer } from '../../src/engine/index.js';
import type { AppendResult, Capabilities, Generator, GeneratorSequence, Vocabulary } from '../../src/backends/generator.js';

const EOS = '<eos>';
const THINK_END = '</think>';
const CHARS = ' abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<>/:.,=?!{}\\\n';

export interface ScriptedVocabOptions {
  /** Multi-character tokens (matched greedily, longest first). */
  extra?: string[];
  /** Reverse the id order, so the same text has other ids than in a default vocabulary. */
  reversed?: boolean;
  name?: string;
}

export class ScriptedVocab implements Vocabulary {
  readonly pieces: string[];
  private readonly ids = new Map<string, number>();
  private readonly byLength: string[];
  readonly info: Vocabulary['info'];

  constructor(opts: ScriptedVocabOptions = {}) {
    const list = [EOS, THINK_END, ...CHARS, ...(opts.extra ?? [])];
    this.pieces = opts.reversed ? list.reverse() : list;
    this.pieces.forEach((p, i) => this.ids.set(p, i));
    this.byLength = [...this.pieces].sort((a, b) => b.length - a.length);
    this.info = {
      path: opts.name ?? 'scripted',
      nVocab: this.pieces.length,
      nEmbd: 4,
      nLayer: 2,
      special: { eos: this.ids.get(EOS)!, thinkEnd: this.ids.get(THINK_END)! },
    } as unknown as Vocabulary['info'];
  }

  id(piece: string): number {
    const id = this.ids.get(piece);
    if (id === undefined) throw new Error(`scripted vocabulary has no token ${JSON.stringify(piece)}`);
    return id;
  }

  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    for (let i = 0; i < text.length; ) {
      const piece = this.byLength.find((p) => text.startsWith(p, i) && (p.length === 1 || p !== THINK_END || opts.parseSpecial !== false) && p !== EOS);
      if (!piece) throw new Error(`scripted vocabulary cannot spell ${JSON.stringify(text.slice(i, i + 5))}`);
      out.push(this.id(piece));
      i += piece.length;
    }
    return out;
  }

  detokenize(tokens: readonly number[]): string {
    return tokens.map((t) => this.pieces[t]!).join('');
  }

  tokenBytes(token: number): Uint8Array {
    return new TextEncoder().encode(this.pieces[token]!);
  }

  isEog(token: number): boolean {
    return token === this.ids.get(EOS);
  }
}

/**
 * Next piece from the sequence's whole text (and the sequence's number: 0 for the first one a generator made, forks
 * counting on); EOS (or '') ends generation. Its logits put +5 on that piece.
 */
export type Script = (text: string, sequence: number) => string;

export interface ScriptedCounts {
  created: number;
  appended: number;
  generated: number;
  forks: number;
  liveSequences: number;
}

export class ScriptedSequence implements GeneratorSequence {
  private history: number[] = [];
  private isDisposed = false;
  private busy = false;
  readonly id: number;

  constructor(private readonly owner: ScriptedGenerator) {
    owner.counts.liveSequences++;
    this.id = owner.counts.created++;
  }

  get vocab(): ScriptedVocab {
    return this.owner.vocab;
  }
  get length(): number {
    return this.history.length;
  }
  get tokens(): number[] {
    return this.history.slice();
  }
  get disposed(): boolean {
    return this.isDisposed;
  }
  get text(): string {
    return this.vocab.detokenize(this.history);
  }

  /** The hidden state a tap reads at position `p`: the position itself, so tests can tell which token it came from. */
  static stateAt(p: number, n = 4): Float32Array {
    return new Float32Array(n).fill(p);
  }

  async append(tokens: readonly number[], opts: { taps?: { layers: TapLayer[]; positions?: number[] } } = {}): Promise<AppendResult> {
    this.check();
    if (tokens.length === 0) throw new Error('append() needs tokens');
    const start = this.history.length;
    this.history.push(...tokens);
    this.owner.counts.appended += tokens.length;
    const hidden = new Map<TapLayer, Float32Array>();
    for (const layer of opts.taps?.layers ?? []) {
      const positions = opts.taps?.positions ?? [tokens.length - 1];
      const rows = new Float32Array(positions.length * 4);
      positions.forEach((p, i) => rows.set(ScriptedSequence.stateAt(start + p), i * 4));
      hidden.set(layer, rows);
    }
    const logits = new Float32Array(this.vocab.info.nVocab);
    logits[this.vocab.id(this.owner.script(this.text, this.id) || EOS)] = 5;
    return { hidden, logits };
  }

  async *generate(opts: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    this.check();
    if (this.busy) throw new Error('scripted sequence is busy');
    this.busy = true;
    try {
      let text = '';
      for (let index = 0; index < opts.maxTokens; index++) {
        // A real decode step takes a turn of the event loop: let other sequences interleave.
        await new Promise((r) => setImmediate(r));
        const piece = this.owner.script(this.text, this.id) || EOS;
        const token = this.vocab.id(piece);
        if (piece === EOS) {
          yield { token, index, text: '', stopped: true, logprob: -0.1 };
          return;
        }
        text += piece;
        const tap = opts.tapLayers && opts.tapLayers.length > 0 && (opts.tapWhen ? opts.tapWhen(token, text) : true);
        const position = this.history.length;
        this.history.push(token);
        this.owner.counts.generated++;
        yield {
          token,
          index,
          text: piece,
          stopped: false,
          logprob: -0.1,
          hidden: tap ? new Map(opts.tapLayers!.map((l) => [l, ScriptedSequence.stateAt(position)])) : undefined,
        };
      }
    } finally {
      this.busy = false;
    }
  }

  fork(): ScriptedSequence {
    this.check();
    const child = new ScriptedSequence(this.owner);
    child.history = this.history.slice();
    this.owner.counts.forks++;
    return child;
  }

  truncate(length: number): void {
    this.check();
    if (this.busy) throw new Error('truncate while generating');
    if (length < 0 || length > this.history.length) throw new Error(`cannot truncate ${this.history.length} tokens to ${length}`);
    this.history.length = length;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.owner.counts.liveSequences--;
  }

  private check(): void {
    if (this.isDisposed) throw new Error('scripted sequence disposed');
  }
}

export class ScriptedGenerator implements Generator {
  readonly capabilities: Readonly<Capabilities> = { hiddenStates: true, fork: true, logprobs: true, topLogprobs: 0 };
  readonly counts: ScriptedCounts = { created: 0, appended: 0, generated: 0, forks: 0, liveSequences: 0 };

  constructor(
    readonly name: string,
    readonly vocab: ScriptedVocab,
    readonly script: Script,
  ) {}

  capacity(): { contextTokens: number; freeSequences: number } {
    return { contextTokens: 1 << 20, freeSequences: 1 << 10 };
  }

  createSequence(): ScriptedSequence {
    return new ScriptedSequence(this);
  }
}

/** Follow a fixed text: the next character of `script` after `written`, if `written` is a prefix of it. */
export function follow(written: string, script: string): string | undefined {
  if (!script.startsWith(written) || written.length >= script.length) return undefined;
  return script.startsWith(THINK_END, written.length) ? THINK_END : script[written.length];
}
