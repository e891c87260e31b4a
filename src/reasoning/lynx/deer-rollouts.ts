/**
 * LYNX on pre-generated rollouts in DEER's format, as LYNX's `eval_on_deer_rollouts.py` does: read DEER's output
 * JSONL, find the cue events of each response, let the caller decide where to exit (LYNX plugs its probe and
 * conformal rule in through `decideAtEvents`), decode the forced exit there, and write DEER's format back so DEER's
 * own `check.py` can score both.
 *
 * DEER's rows (`vllm-deer.py`): `{ question, generated_responses: [text], gold_answer, too_long, thinking_steps,
 * rep_end, high_prob, regular_end }`, the response being everything the model wrote after the prompt (thinking, the
 * `</think>` and the answer). Like LYNX's reader this one also accepts `problem` / `answer` / `generated_response`.
 *
 * Differences from LYNX's script, on purpose: the prompt is rebuilt by the caller (`promptTokens`) instead of
 * DEER's system prompt through the chat template; the response is tokenized on its own (LYNX re-encodes prompt +
 * response together); events are the project's whole-word cue events (`findCueEvents`); and the written response is
 * the assistant text only (the kept reasoning + exit cue + answer), where LYNX writes the decoded prompt too, which
 * would inflate DEER's token count.
 */
import { readFileSync } from 'node:fs';
import type { LlamaContext, TapLayer } from '../../engine/index.js';
import { InvalidInputError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { exitCueText, forcedExit } from '../forced-exit.js';
import { findCueEvents, type CueToken, type CueVariant } from './cues.js';
import { tokenCounts, type TokenCounts } from '../token-counts.js';

/** One line of DEER's output JSONL. */
export interface DeerRolloutRow {
  question: string;
  generated_responses: string[];
  gold_answer: string;
  too_long?: number;
  thinking_steps?: number;
  rep_end?: number;
  high_prob?: number;
  regular_end?: number;
  [key: string]: unknown;
}

export interface DeerRollout {
  /** Line order in the file (0-based, blank lines skipped). */
  index: number;
  question: string;
  gold: string;
  /** The first generated response. */
  response: string;
  /** The row as read. */
  row: Record<string, unknown>;
}

/** Parse DEER's JSONL text. A malformed line or a row without a question or response is an error naming the line. */
export function parseDeerRollouts(text: string, source = 'DEER rollouts', limit?: number): DeerRollout[] {
  const out: DeerRollout[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length && (limit === undefined || out.length < limit); i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new InvalidInputError(`${source}:${i + 1}: malformed JSON line (${(e as Error).message})`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new InvalidInputError(`${source}:${i + 1}: a row must be a JSON object`);
    const r = row as Record<string, unknown>;
    const question = r.question ?? r.problem;
    const gold = r.gold_answer ?? r.answer ?? '';
    const gen = r.generated_responses ?? r.generated_response;
    const response = Array.isArray(gen) ? gen[0] : gen;
    if (typeof question !== 'string') throw new InvalidInputError(`${source}:${i + 1}: no "question" (or "problem") string`);
    if (typeof response !== 'string') {
      throw new InvalidInputError(`${source}:${i + 1}: no "generated_responses" list of strings (or "generated_response" string)`);
    }
    out.push({ index: out.length, question, gold: String(gold), response, row: r });
  }
  return out;
}

export function readDeerRollouts(path: string, opts: { limit?: number } = {}): DeerRollout[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InvalidInputError(`cannot read DEER rollouts ${path}: ${(e as Error).message}`);
  }
  return parseDeerRollouts(text, path, opts.limit);
}

/** Write rows as DEER's JSONL (atomically). */
export function writeDeerRollouts(path: string, rows: readonly DeerRolloutRow[]): void {
  writeFileAtomic(path, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : ''));
}

/** A cue event of a stored response. */
export interface DeerRolloutEvent {
  /** Ordinal among the response's events. */
  index: number;
  cue: string;
  word: string;
  /** Index of the response token completing the cue (its hidden state is the feature; the exit cuts before it). */
  tokenIndex: number;
  charStart: number;
  charEnd: number;
  /** Hidden states of that token per tapped layer (when `tapLayers` is given). */
  hidden?: Map<TapLayer, Float32Array>;
}

export interface DeerEventContext {
  rollout: DeerRollout;
  promptTokens: readonly number[];
  responseTokens: readonly number[];
}

/** LYNX's decision: the index (into `events`) of the event to exit at, or null to keep the stored response. */
export type DecideAtEvents = (events: readonly DeerRolloutEvent[], ctx: DeerEventContext) => number | null | Promise<number | null>;

export interface DeerEventOptions {
  context: LlamaContext;
  /** The prompt the rollout was generated from, as tokens (rebuild it with the same chat template and system prompt). */
  promptTokens: (rollout: DeerRollout) => readonly number[];
  decideAtEvents: DecideAtEvents;
  /** Cue words of the events. Default LYNX's: hmm, wait, alternatively. */
  cues?: CueVariant | readonly string[];
  /** Capture hidden states at the events (one prefill of prompt + response with taps). */
  tapLayers?: TapLayer[];
  /** Exit cue (name or text). Default LYNX's `paper`. */
  exitCue?: string;
  /** Answer tokens after the exit cue. Default 64. */
  answerMaxTokens?: number;
  /** Called after each rollout (for progress or incremental writing). */
  onResult?: (result: DeerEventResult) => void;
}

export interface DeerEventResult {
  rollout: DeerRollout;
  events: DeerRolloutEvent[];
  /** Index into `events`, or null when the stored response is kept. */
  exitEvent: number | null;
  /** Tokens of the stored response. */
  baselineTokens: number;
  /**
   * Tokens of the result: reasoning kept + exit cue + answer, or the stored response's tokens (all `reasoning`).
   * Decoded as online LYNX would have decoded them (the kept reasoning and the answer; the stored response when kept),
   * prefilled the prompt and the exit cue.
   */
  tokens: TokenCounts;
  /** Response to write in DEER's format: the kept reasoning, the exit cue and the answer; or the stored response. */
  response: string;
  /** Boxed answer of the forced exit (undefined without an exit). */
  exitAnswer?: string | null;
}

/** Decode token texts the way the engine streams them: a character split over tokens appears with the last one. */
function tokenTexts(context: LlamaContext, tokens: readonly number[]): CueToken[] {
  const model = context.model;
  const decoder = new TextDecoder('utf-8');
  const thinkEnd = model.info.special.thinkEnd;
  return tokens.map((t) => ({ text: decoder.decode(model.tokenBytes(t), { stream: true }), endsThinking: t === thinkEnd }));
}

/** Apply an exit decision at the cue events of each stored rollout, one rollout at a time. */
export async function applyAtDeerEvents(rollouts: readonly DeerRollout[], opts: DeerEventOptions): Promise<DeerEventResult[]> {
  const { context } = opts;
  const model = context.model;
  const cueText = exitCueText(opts.exitCue ?? 'paper');
  const results: DeerEventResult[] = [];
  for (const rollout of rollouts) {
    const promptTokens = opts.promptTokens(rollout);
    if (promptTokens.length === 0) throw new InvalidInputError(`rollout ${rollout.index}: the prompt is empty`);
    const responseTokens = model.tokenize(rollout.response, { addSpecial: false, parseSpecial: true });
    const hits = findCueEvents(tokenTexts(context, responseTokens), { cues: opts.cues ?? 'default' });
    const events: DeerRolloutEvent[] = hits.map((h) => ({
      index: h.eventIndex,
      cue: h.cue,
      word: h.word,
      tokenIndex: h.tokenIndex,
      charStart: h.charStart,
      charEnd: h.charEnd,
    }));
    const ctx: DeerEventContext = { rollout, promptTokens, responseTokens };
    const seq = context.createSequence();
    try {
      const layers = opts.tapLayers ?? [];
      const wantHidden = layers.length > 0 && events.length > 0;
      if (wantHidden) {
        // One prefill of prompt + response, tapping every event token.
        await seq.append(promptTokens);
        const r = await seq.append(responseTokens, { taps: { layers, positions: events.map((e) => e.tokenIndex) } });
        const nEmbd = model.info.nEmbd;
        events.forEach((e, i) => {
          e.hidden = new Map(layers.map((l) => [l, r.hidden.get(l)!.slice(i * nEmbd, (i + 1) * nEmbd)]));
        });
      }
      const exitEvent = events.length > 0 ? await opts.decideAtEvents(events, ctx) : null;
      let result: DeerEventResult;
      const baseline = tokenCounts(responseTokens.length, 0, 0, { decoded: responseTokens.length, prefilled: promptTokens.length });
      if (exitEvent === null) {
        result = { rollout, events, exitEvent: null, baselineTokens: responseTokens.length, tokens: baseline, response: rollout.response };
      } else {
        const ev = events[exitEvent];
        if (!Number.isInteger(exitEvent) || ev === undefined) {
          throw new InvalidInputError(`rollout ${rollout.index}: decideAtEvents returned ${exitEvent}, not an index of its ${events.length} events`);
        }
        const cut = ev.tokenIndex;
        if (!wantHidden) {
          // Only the kept reasoning is needed for the exit.
          await seq.append([...promptTokens, ...responseTokens.slice(0, cut)]);
        }
        const exit = await forcedExit(seq, { cue: cueText, maxTokens: opts.answerMaxTokens ?? 64, at: promptTokens.length + cut, mode: 'inplace' });
        result = {
          rollout,
          events,
          exitEvent,
          baselineTokens: responseTokens.length,
          tokens: tokenCounts(cut, exit.cueTokens, exit.answerTokens, { decoded: cut + exit.answerTokens, prefilled: promptTokens.length + exit.cueTokens }),
          response: model.detokenize(responseTokens.slice(0, cut)) + cueText + exit.text,
          exitAnswer: exit.answer,
        };
      }
      results.push(result);
      opts.onResult?.(result);
    } finally {
      seq.dispose();
    }
  }
  return results;
}

/**
 * DEER rows of the results, in input order. An exited row gets the flags LYNX writes (`regular_end` 1, the others
 * 0); a kept row keeps its own flags.
 */
export function toDeerRows(results: readonly DeerEventResult[]): DeerRolloutRow[] {
  return results.map((r) => {
    const flags = (k: string, exited: number) => (r.exitEvent === null && typeof r.rollout.row[k] === 'number' ? (r.rollout.row[k] as number) : exited);
    return {
      question: r.rollout.question,
      generated_responses: [r.response],
      gold_answer: r.rollout.gold,
      too_long: flags('too_long', 0),
      thinking_steps: flags('thinking_steps', 0),
      rep_end: flags('rep_end', 0),
      high_prob: flags('high_prob', 0),
      regular_end: flags('regular_end', 1),
    };
  });
}
