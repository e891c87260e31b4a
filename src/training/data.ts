/**
 * Training data as rows of input tokens and next-token targets, checked before any native code sees them (a bad
 * token id would fail a GGML_ASSERT and abort the process), and cut from token streams into windows.
 */
import { InvalidInputError } from '../util/errors.js';

/**
 * Training data: `count` rows of `seqLen` input tokens and the `seqLen` next-token targets of each row, row-major.
 * llama.cpp takes loss at every position (there is no ignore index), so every target must be a real token id.
 * A plain array of sequences of seqLen + 1 tokens is also accepted (targets = the sequence shifted by one).
 */
export type TrainingData = TokenRows | readonly Int32Array[];

export interface TokenRows {
  tokens: Int32Array;
  labels: Int32Array;
}

/** Rows from sequences of seqLen + 1 tokens: inputs are tokens [0, seqLen), targets tokens [1, seqLen]. */
export function rowsFromSequences(sequences: readonly Int32Array[], seqLen: number, what = 'training data'): TokenRows {
  if (!Array.isArray(sequences)) throw new InvalidInputError(`${what} must be token rows or an array of Int32Array sequences`);
  const tokens = new Int32Array(sequences.length * seqLen);
  const labels = new Int32Array(sequences.length * seqLen);
  for (let i = 0; i < sequences.length; i++) {
    const s = sequences[i];
    if (!(s instanceof Int32Array)) throw new InvalidInputError(`${what}: sequence ${i} is not an Int32Array`);
    if (s.length !== seqLen + 1) {
      throw new InvalidInputError(`${what}: sequence ${i} has ${s.length} tokens; every sequence needs seqLen + 1 = ${seqLen + 1} (inputs and the shifted targets)`);
    }
    tokens.set(s.subarray(0, seqLen), i * seqLen);
    labels.set(s.subarray(1), i * seqLen);
  }
  return { tokens, labels };
}

/** Normalise and check training data: whole rows of seqLen, every id (input and target) in the vocabulary. */
export function checkTrainingData(what: string, data: TrainingData, seqLen: number, nVocab: number): TokenRows {
  const rows = Array.isArray(data) ? rowsFromSequences(data as readonly Int32Array[], seqLen, what) : (data as TokenRows);
  if (!rows || !(rows.tokens instanceof Int32Array) || !(rows.labels instanceof Int32Array)) {
    throw new InvalidInputError(`${what}: expected { tokens: Int32Array, labels: Int32Array } or an array of Int32Array sequences`);
  }
  if (rows.tokens.length !== rows.labels.length) {
    throw new InvalidInputError(`${what}: ${rows.tokens.length} input tokens but ${rows.labels.length} targets`);
  }
  if (rows.tokens.length % seqLen !== 0) {
    throw new InvalidInputError(`${what}: ${rows.tokens.length} tokens is not a whole number of rows of seqLen ${seqLen}`);
  }
  for (const [kind, arr] of [['input', rows.tokens], ['target', rows.labels]] as const) {
    for (let i = 0; i < arr.length; i++) {
      const t = arr[i]!;
      if (t < 0 || t >= nVocab) {
        throw new InvalidInputError(
          `${what}: row ${Math.floor(i / seqLen)}, position ${i % seqLen}: ${kind} ${t} is not a token id of the model (vocabulary of ${nVocab})` +
            (kind === 'target' && t < 0 ? '; llama.cpp takes loss at every position, replace ignored targets with a real token (e.g. the pad token)' : ''),
        );
      }
    }
  }
  return rows;
}

export function rowCount(rows: TokenRows, seqLen: number): number {
  return rows.tokens.length / seqLen;
}

/** Cut a token stream into training sequences of seqLen + 1 tokens, `stride` tokens apart (default seqLen). */
export function windowsFromStream(tokens: ArrayLike<number>, seqLen: number, stride = seqLen): Int32Array[] {
  if (!Number.isInteger(seqLen) || seqLen <= 0) throw new InvalidInputError(`seqLen must be a positive integer (got ${seqLen})`);
  if (!Number.isInteger(stride) || stride <= 0) throw new InvalidInputError(`stride must be a positive integer (got ${stride})`);
  const out: Int32Array[] = [];
  for (let start = 0; start + seqLen + 1 <= tokens.length; start += stride) {
    const w = new Int32Array(seqLen + 1);
    for (let j = 0; j <= seqLen; j++) w[j] = tokens[start + j]!;
    out.push(w);
  }
  return out;
}
