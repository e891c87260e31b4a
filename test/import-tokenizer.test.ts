/**
 * Tokenization parity: the Hugging Face tokenizer (@huggingface/tokenizers on the real Qwen tokenizer.json with
 * R1-Distill's special tokens) against llama.cpp on the vocabulary the converter wrote into the GGUF, on a few
 * hundred varied strings; and the chat template rendered as transformers renders it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel } from '../src/engine/index.js';
import { ChatTemplate, opensThinking } from '../src/import/chat-template.js';
import type { ChatMessage } from '../src/tasks/prompts.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { loadHfTokenizer, type HfTokenizer } from '../src/import/tokenizer.js';
import { renderChatForModel } from '../src/reasoning/prompt-tokens.js';
import { readJsonl } from '../src/util/jsonl.js';
import { dataDir } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { buildTinyHfModel, R1, tinyHfToGguf } from './helpers/tiny-models.js';

let dir: string;
let folder: string;
let gguf: string;
let hf: HfTokenizer;
let model: LlamaModel;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-tokenizer-'));
  folder = buildTinyHfModel(join(dir, 'hf'), { arch: 'qwen2', hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 32 });
  gguf = tinyHfToGguf(folder, join(dir, 'tok.gguf'), 'bf16');
  hf = loadHfTokenizer(folder);
  // Not vocabOnly: the engine aborts reading n_head of a vocab-only model (llama-hparams.cpp:55); the model is tiny.
  model = LlamaModel.load(gguf);
});
afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A few hundred strings: benchmark questions, code, unicode, whitespace runs, numbers, special tokens. */
function corpus(): string[] {
  const rng = new Rng(2024);
  const gsm = rng.shuffle(readJsonl<{ question: string; answer: string }>(join(dataDir(), 'gsm8k', 'test.jsonl'))).slice(0, 100);
  const math = rng.shuffle(readJsonl<{ problem: string; solution: string }>(join(dataDir(), 'math', 'test.jsonl'))).slice(0, 100);
  const out: string[] = [
    ...gsm.map((r) => r.question),
    ...gsm.slice(0, 30).map((r) => r.answer),
    ...math.map((r) => r.problem),
    ...math.slice(0, 30).map((r) => r.solution),
  ];
  out.push(
    // code
    'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
    'for (let i = 0; i < arr.length; i++) { sum += arr[i] ** 2; }',
    '#include <stdio.h>\nint main(void) {\n\tprintf("%d\\n", 42);\n\treturn 0;\n}',
    '```python\nimport numpy as np\nx = np.linspace(0, 1, 101)\n```',
    'SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name HAVING COUNT(*) > 1;',
    '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b"}}',
    '<div class="x">&amp; &lt;tag&gt;</div>',
    // unicode
    'Ünïcödé façade naïve café résumé Ångström',
    '我想在apple工作1314151天～ 你好，世界！',
    'こんにちは世界、カタカナとひらがな',
    '안녕하세요 세계',
    'Привет, мир! нещо на Български',
    'مرحبا بالعالم',
    'שלום עולם',
    'कान्तेपिसेसाच्छ हिन्दी पाठ',
    'កាន់តែពិសេសអាច😁',
    '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙 👨‍👩‍👧‍👦 🇫🇷',
    '∀x ∈ ℝ, ∃y: x² + y² ≥ 2xy; ∑_{i=1}^{n} i = n(n+1)/2 ≈ ∞ → ∂f/∂x',
    'ﬁ ligature, Ⅻ roman, ① circled, ｆｕｌｌｗｉｄｔｈ',
    'zero\u200bwidth\u200cjoiners\u200d and a soft\u00adhyphen',
    // whitespace runs
    '   leading spaces',
    'trailing spaces   ',
    'a\tb\t\tc\t\t\td',
    'line1\n\nline3\n\n\n\nline7',
    '\r\nwindows\r\nlines\r\n',
    ' \n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n',
    'mixed \u00a0non-breaking\u00a0\u00a0spaces \u3000ideographic',
    '',
    ' ',
    '\n',
    // numbers
    '3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3',
    '1234567890 0.000001 -42 +7 1,000,000 1e-10 6.022e23 0x1F 0b1010 1/3 99%',
    'In 2024, 17.5% of 3,456 people paid $12.99 each: total $44,893.44.',
    // punctuation and contractions
    "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
    "''''''```````\"\"\"\"......!!!!!!?????? ------=======",
    "don't won't can't shouldn't y'all O'Neil rock'n'roll",
    // special tokens and think tags inside text
    '<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\nLet me think.\n</think>\n\nThe answer is 4.<｜end▁of▁sentence｜>',
    '<think>\n\n</think>\n\n',
    'Wait, </think> appears mid-sentence</think>and again<think>',
    '<|EOT|> <|fim_prefix|>def<|fim_suffix|>pass<|fim_middle|>',
    '<tool_call>{"name": "f"}</tool_call>',
    '< think > <think <think>> </ think>',
  );
  // random printable ASCII noise
  for (let i = 0; i < 20; i++) {
    let s = '';
    const n = rng.int(1, 60);
    for (let j = 0; j < n; j++) s += String.fromCharCode(rng.int(32, 126));
    out.push(s);
  }
  return out;
}

describe('tokenizer parity: Hugging Face vs llama.cpp on the converted GGUF', () => {
  it('tokenizes a few hundred varied strings identically (no special tokens added, special tokens parsed)', () => {
    const strings = corpus();
    expect(strings.length).toBeGreaterThan(300);
    const mismatches: string[] = [];
    for (const s of strings) {
      const a = hf.encode(s);
      const b = model.tokenize(s, { addSpecial: false, parseSpecial: true });
      if (a.join(',') !== b.join(',')) mismatches.push(`${JSON.stringify(s.slice(0, 80))}\n  hf:    ${a.slice(0, 20)}\n  llama: ${b.slice(0, 20)}`);
    }
    expect(mismatches, mismatches.slice(0, 5).join('\n')).toEqual([]);
  });

  it('adds BOS exactly as Hugging Face does (R1-Distill prepends <｜begin▁of▁sentence｜>)', () => {
    for (const s of ['Hello world', 'What is 7 × 8?', '']) {
      const a = hf.encode(s, { addSpecialTokens: true });
      expect(a[0]).toBe(R1.ids.bos);
      expect(model.tokenize(s, { addSpecial: true, parseSpecial: true })).toEqual(a);
    }
    expect(model.info.addBos).toBe(true);
    expect(model.info.special.bos).toBe(R1.ids.bos);
    expect(model.info.special.eos).toBe(R1.ids.eos);
    expect(model.info.special.thinkStart).toBe(R1.ids.thinkStart);
    expect(model.info.special.thinkEnd).toBe(R1.ids.thinkEnd);
  });

  it('special tokens and think tags are single tokens on both sides', () => {
    for (const [text, id] of [
      [R1.bos, R1.ids.bos],
      [R1.eos, R1.ids.eos],
      [R1.user, R1.ids.user],
      [R1.assistant, R1.ids.assistant],
      [R1.thinkStart, R1.ids.thinkStart],
      [R1.thinkEnd, R1.ids.thinkEnd],
    ] as const) {
      expect(hf.encode(text)).toEqual([id]);
      expect(model.tokenize(text, { addSpecial: false, parseSpecial: true })).toEqual([id]);
    }
  });

  it('detokenizes back to the Hugging Face decoding', () => {
    for (const s of corpus().slice(0, 80)) {
      const ids = hf.encode(s);
      expect(model.detokenize(ids)).toBe(hf.decode(ids));
    }
  });

  it('text that is not NFC-normalised: Hugging Face normalises (NFC), llama.cpp does not; normalising first agrees', () => {
    const nfd = 'cafe\u0301 nai\u0308ve'; // decomposed é and ï
    const nfc = nfd.normalize('NFC');
    expect(hf.encode(nfd)).toEqual(hf.encode(nfc));
    // llama.cpp has no normalizer: callers that tokenize with the engine must NFC-normalise text first.
    expect(model.tokenize(nfd, { addSpecial: false, parseSpecial: true })).not.toEqual(hf.encode(nfd));
    expect(model.tokenize(nfc, { addSpecial: false, parseSpecial: true })).toEqual(hf.encode(nfd));
  });

  it('the HF tokenizer rejects a model whose embedding matrix is smaller than the vocabulary', () => {
    expect(() => hf.checkVocabSize(151000)).toThrow(/151665 tokens but the model has only 151000 embedding rows/);
    expect(() => hf.checkVocabSize(R1.vocabSize)).not.toThrow();
  });
});

describe('chat template', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'What is 6 × 7?' },
  ];

  it('renders R1-Distill prompts as transformers does: BOS, system, user turn, assistant opening <think>\\n', () => {
    const t = ChatTemplate.fromFolder(folder);
    const text = t.render(messages);
    expect(text).toBe(`${R1.bos}You are terse.${R1.user}What is 6 × 7?${R1.assistant}<think>\n`);
    expect(opensThinking(text)).toBe(true);
    expect(t.render(messages, { addGenerationPrompt: false })).toBe(`${R1.bos}You are terse.${R1.user}What is 6 × 7?`);
    // A past assistant turn keeps only what follows </think>, and ends with EOS.
    const multi = t.render(
      [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: '<think>\nhmm\n</think>\n\nHello!' },
        { role: 'user', content: 'Again' },
      ],
      { addGenerationPrompt: true },
    );
    expect(multi).toBe(`${R1.bos}${R1.user}Hi${R1.assistant}\n\nHello!${R1.eos}${R1.user}Again${R1.assistant}<think>\n`);
    // Tokenized, the prompt ends with the think opening.
    const ids = hf.encode(text);
    expect(ids[0]).toBe(R1.ids.bos);
    expect(ids.slice(-3)).toEqual([R1.ids.assistant, R1.ids.thinkStart, 198]);
    expect(model.tokenize(text, { addSpecial: false, parseSpecial: true })).toEqual(ids);
  });

  it('the template stored in the GGUF renders the same prompt', () => {
    const g = GgufFile.open(gguf);
    try {
      const tokens = g.get('tokenizer.ggml.tokens') as string[];
      const t = ChatTemplate.fromGguf((k) => g.get(k), (id) => tokens[id]);
      expect(t.render(messages)).toBe(ChatTemplate.fromFolder(folder).render(messages));
    } finally {
      g.close();
    }
    // Through the engine's metadata too.
    const t2 = ChatTemplate.fromGguf((k) => model.meta(k), (id) => Buffer.from(model.tokenBytes(id)).toString('utf8'));
    expect(t2.render(messages)).toBe(ChatTemplate.fromFolder(folder).render(messages));
    // And as prompts are built: llama.cpp's template and BOS/EOS (renderChatForModel).
    const turns: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'What is 6 × 7?' },
    ];
    expect(renderChatForModel(model, turns)).toBe(ChatTemplate.fromFolder(folder).render(messages));
  });

  it('passes extra variables (Qwen3 enable_thinking) and reports template errors clearly', () => {
    const t = new ChatTemplate(
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}",
    );
    const m = [{ role: 'user', content: 'hi' }];
    expect(t.render(m)).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
    expect(t.render(m, { extra: { enable_thinking: false } })).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n');
    expect(() => new ChatTemplate('{% for x in %}')).toThrow(/chat template does not parse/);
    expect(() => new ChatTemplate("{{ raise_exception('no system role') }}").render(m)).toThrow(/no system role/);
  });
});
