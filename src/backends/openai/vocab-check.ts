/**
 * The remote model must be the local model's tokenizer twin: token ids cross the wire both ways (prompts go out as
 * ids, sampled ids come back and are read, tapped and scored here). A probe text with the tokenizer's hard cases
 * (special tokens, digits, whitespace runs, accents, CJK, an emoji) is tokenized on both sides and compared.
 */
import type { Vocabulary } from '../generator.js';
import { RemoteServerError, VocabularyMismatchError } from './errors.js';
import type { RemoteServer } from './remote.js';

/** Text whose tokenization tells tokenizers apart (special tokens are added from the model's own, when it has them). */
export function probeText(vocab: Vocabulary): string {
  const special = (id: number | undefined) => (id === undefined ? '' : vocab.detokenize([id]));
  const s = vocab.info.special;
  return (
    `${special(s.thinkStart)}\nOkay, 12 x 3.5 = 42? Hmm... wait:  \\boxed{x^2 + 1}\n\n\tAlternatively, naïve café — Über 你好, мир! 🦊 ` +
    `${special(s.thinkEnd)} Final Answer: 0.125%${special(s.eos)}`
  );
}

/** The server's tokens of `text` (no BOS added), from whichever tokenizer endpoint it has; undefined when it has none. */
async function remoteTokens(server: RemoteServer, text: string): Promise<number[] | undefined> {
  const tries: [string, unknown][] =
    server.kind === 'llamacpp'
      ? [['/tokenize', { content: text, add_special: false, parse_special: true }]]
      : [
          ['/tokenize', { model: server.model, prompt: text, add_special_tokens: false }],
          ['/v1/tokenize', { model: server.model, prompt: text, add_special_tokens: false }],
        ];
  for (const [path, body] of tries) {
    let j: unknown;
    try {
      j = await server.json('POST', path, body, { retries: 1 });
    } catch (e) {
      if (e instanceof RemoteServerError && (e.status === 404 || e.status === 405)) continue;
      throw e;
    }
    const tokens = (j as { tokens?: unknown }).tokens;
    if (Array.isArray(tokens)) return tokens.map((t) => (typeof t === 'number' ? t : Number((t as { id?: unknown }).id)));
  }
  return undefined;
}

/** Throw a VocabularyMismatchError naming the first token that differs; a RemoteServerError when no check is possible. */
export async function checkVocabulary(server: RemoteServer, vocab: Vocabulary, remoteVocabSize?: number): Promise<void> {
  const where = `${server.url} (${server.model})`;
  const local = vocab.info.path.split(/[\\/]/).pop();
  if (remoteVocabSize !== undefined && remoteVocabSize !== vocab.info.nVocab) {
    throw new VocabularyMismatchError(
      `the model at ${where} has ${remoteVocabSize} tokens, ${local} has ${vocab.info.nVocab}: give -m the GGUF of the model the server runs`,
    );
  }
  const text = probeText(vocab);
  const mine = vocab.tokenize(text, { addSpecial: false, parseSpecial: true });
  const theirs = await remoteTokens(server, text);
  if (theirs === undefined) {
    throw new RemoteServerError(
      `${where} has no tokenizer endpoint (/tokenize), so lynx cannot check that it tokenizes as ${local} does; pass --no-vocab-check to run anyway`,
    );
  }
  if (theirs.length === mine.length && theirs.every((t, i) => t === mine[i])) return;
  let i = 0;
  while (i < mine.length && i < theirs.length && mine[i] === theirs[i]) i++;
  const show = (ids: number[]) => (i < ids.length ? `${ids[i]} ${JSON.stringify(i < ids.length && ids[i]! < vocab.info.nVocab ? vocab.detokenize([ids[i]!]) : '?')}` : 'the end');
  throw new VocabularyMismatchError(
    `the model at ${where} tokenizes differently from ${local}: a probe text gives ${theirs.length} tokens there and ${mine.length} here, ` +
      `first different at token ${i} (there ${show(theirs)}, here ${show(mine)}). Its token ids would mean other text here: ` +
      'give -m the GGUF of the model the server runs (the same tokenizer and chat template)',
  );
}
