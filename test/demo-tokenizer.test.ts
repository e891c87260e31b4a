import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { buildDemoTokenizer, exampleText, renderDemoPrompt, trainDemoTokenizerSpec } from '../src/demo/corpus.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHAT_TEMPLATE, DemoTokenizer, preTokenize, SPECIAL, trainBpe, writeHfTokenizerFiles } from '../src/demo/tokenizer.js';
import { generateTraces } from '../src/demo/traces.js';
import { InvalidInputError } from '../src/util/errors.js';

const tok = buildDemoTokenizer();
const traces = generateTraces(400, { seed: 31, split: 'any' });
const texts = traces.map((t) => {
  const { prompt, completion } = exampleText(t);
  return prompt + completion;
});
/** Text the demo corpus never contains: other scripts, emoji, control characters, odd spacing. */
const strangers = [
  '',
  ' ',
  '\n\n\n',
  'Hello, world!',
  "It's 3.14159 — isn't it? I'll say we've 10,000 cats.",
  'naïve café, straße, Ελληνικά, русский, 日本語のテキスト, 한국어',
  'emoji 🦊🧠 and a flag 🇫🇷; zero width\u200bjoin',
  'tabs\tand  double  spaces   \n  indented\r\nwindows',
  '\\frac{1}{2} + \\sqrt{x^2} = \\boxed{42}',
  '<think>inside</think> and <｜User｜>hi<｜Assistant｜> then <｜end▁of▁sentence｜>',
  '</think> Final Answer: \\boxed{',
  '\u0000\u0001\u007f bytes',
];

function hfTokenizer(t: DemoTokenizer): Tokenizer {
  return new Tokenizer(JSON.parse(JSON.stringify(t.toHfTokenizerJson())), t.toHfTokenizerConfig(512));
}

describe('demo tokenizer', () => {
  it('is trained deterministically, with the byte tokens, the special tokens and a small vocabulary', () => {
    expect(trainDemoTokenizerSpec()).toEqual(tok.toSpec());
    expect(tok.vocabSize).toBeGreaterThanOrEqual(512);
    expect(tok.vocabSize).toBeLessThanOrEqual(1024);
    for (const s of Object.values(SPECIAL)) expect(tok.encode(s)).toHaveLength(1);
    expect(tok.decode([tok.bos, tok.user, tok.assistant, tok.thinkStart, tok.thinkEnd, tok.eos, tok.pad])).toBe(
      SPECIAL.bos + SPECIAL.user + SPECIAL.assistant + SPECIAL.thinkStart + SPECIAL.thinkEnd + SPECIAL.eos + SPECIAL.pad,
    );
    // The vocabulary covers the task: its words are single tokens.
    for (const w of [' answer', ' Wait', 'Wait', 'Hmm', 'Alternatively', ' starts', 'Final', ' Answer']) {
      expect(tok.encode(w).length, w).toBeLessThanOrEqual(2);
    }
  });

  it('spells every number digit by digit', () => {
    for (const text of ['12 + 5 = 17.', 'So the answer is 1234.', '\\boxed{907}']) {
      const pieces = tok.encode(text).map((id) => tok.decode([id]));
      for (const p of pieces) if (/\d/.test(p)) expect(p).toMatch(/^\d$/);
    }
  });

  it('round-trips any text exactly', () => {
    for (const text of [...texts, ...strangers]) expect(tok.decode(tok.encode(text))).toBe(text);
  });

  it('gives the same tokens as @huggingface/tokenizers on the tokenizer.json it writes', () => {
    const hf = hfTokenizer(tok);
    for (const text of [...texts.slice(0, 150), ...strangers]) {
      const ids = tok.encode(text);
      expect(hf.encode(text, { add_special_tokens: false }).ids, text).toEqual(ids);
      if (ids.length > 0) expect(hf.decode(ids)).toBe(text);
    }
    // add_bos_token: BOS first, as llama.cpp does with add_special.
    expect(hf.encode('Hi', { add_special_tokens: true }).ids).toEqual(tok.encode('Hi', { addBos: true }));
    // And it loads back into the same tokenizer.
    expect(DemoTokenizer.fromHfTokenizerJson(tok.toHfTokenizerJson()).toSpec()).toEqual(tok.toSpec());
  });

  it('writes tokenizer.json and tokenizer_config.json that load as they were', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lynx-demo-tok-'));
    try {
      const files = writeHfTokenizerFiles(dir, tok, 512);
      const json = JSON.parse(readFileSync(files.tokenizer, 'utf8'));
      const config = JSON.parse(readFileSync(files.config, 'utf8'));
      expect(config.chat_template).toBe(CHAT_TEMPLATE);
      expect(config.bos_token).toBe(SPECIAL.bos);
      const hf = new Tokenizer(json, config);
      expect(hf.encode(texts[0]!, { add_special_tokens: false }).ids).toEqual(tok.encode(texts[0]!));
      expect(DemoTokenizer.fromHfTokenizerJson(json).toSpec()).toEqual(tok.toSpec());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('splits user-defined tokens even without parseSpecial, control tokens only with it', () => {
    const text = `${SPECIAL.bos}a<think>b`;
    expect(tok.encode(text)).toEqual([tok.bos, ...tok.encode('a'), tok.thinkStart, ...tok.encode('b')]);
    const raw = tok.encode(text, { parseSpecial: false });
    expect(raw).not.toContain(tok.bos);
    expect(raw).toContain(tok.thinkStart);
    expect(tok.decode(raw)).toBe(text);
  });

  it('reports character offsets of tokens', () => {
    const text = 'Wait, 12 × 3 is 36.\n\n</think> ok é';
    const { ids, starts, ends } = tok.encodeWithOffsets(text);
    expect(ids).toEqual(tok.encode(text));
    let rebuilt = '';
    let last = 0;
    for (let i = 0; i < ids.length; i++) {
      if (starts[i]! >= last) rebuilt += text.slice(starts[i], ends[i]);
      last = Math.max(last, ends[i]!);
    }
    expect(rebuilt).toBe(text);
    expect(text.slice(starts[0], ends[0])).toBe('Wait');
  });

  it('pre-tokenizes like llama.cpp qwen2: letters with one leading mark, single digits, punctuation runs with newlines', () => {
    expect(preTokenize('So the answer is 17.\n\nWait, 12 + 5')).toEqual(['So', ' the', ' answer', ' is', ' ', '1', '7', '.\n\n', 'Wait', ',', ' ', '1', '2', ' +', ' ', '5']);
  });

  it('renders the R1-Distill chat template with the generation prompt', () => {
    expect(renderDemoPrompt('What is 2 + 2?')).toBe(`${SPECIAL.bos}${SPECIAL.user}What is 2 + 2?${SPECIAL.assistant}<think>\n`);
    const history = new Template(CHAT_TEMPLATE).render({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: 'thinking\n</think>\n\nFinal Answer: \\boxed{4}' },
        { role: 'user', content: 'b' },
      ],
      add_generation_prompt: true,
      bos_token: SPECIAL.bos,
    });
    expect(history).toBe(`${SPECIAL.bos}${SPECIAL.user}a${SPECIAL.assistant}\n\nFinal Answer: \\boxed{4}${SPECIAL.eos}${SPECIAL.user}b${SPECIAL.assistant}<think>\n`);
  });

  it('trains BPE merges by frequency, ties broken by order, and refuses a vocabulary too small', () => {
    // "aaab" three times: a+a occurs 6 times, a+b 5 times (with the two "ab").
    const spec = trainBpe(['aaab aaab aaab', 'ab ab'], { vocabSize: 256 + 7 + 3 });
    expect(spec.merges.slice(0, 2)).toEqual([
      ['a', 'a'],
      ['a', 'b'],
    ]);
    expect(trainBpe(['aaab aaab aaab', 'ab ab'], { vocabSize: 256 + 7 + 3 })).toEqual(spec);
    // Equal counts: the pair that sorts first wins; minFrequency stops merging.
    expect(trainBpe(['cd ab'], { minFrequency: 1 }).merges.slice(0, 2)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
    ]);
    expect(trainBpe(['cd ab'], { minFrequency: 2 }).merges).toEqual([]);
    expect(() => trainBpe(['x'], { vocabSize: 100 })).toThrow(InvalidInputError);
  });
});
