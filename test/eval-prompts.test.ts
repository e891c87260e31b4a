import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyPromptTemplate,
  buildPrompt,
  checkPromptStyle,
  csqaMessages,
  DEER_SYSTEM_PROMPT,
  LYNX_SYSTEM_PROMPT,
  loadPromptTemplate,
  parsePromptTemplate,
  withHintLine,
  zstMessages,
  ZST_INSTRUCTION,
} from '../src/tasks/prompts.js';
import { InvalidInputError } from '../src/util/errors.js';

const choices = ['bank', 'library', 'department store', 'mall', 'new york'].map((text, i) => ({
  label: String.fromCharCode(65 + i),
  text,
}));

describe('prompt styles', () => {
  it('zst: one user turn, the problem, a newline, the boxed instruction', () => {
    expect(zstMessages('What is $1+1$?')).toEqual([
      {
        role: 'user',
        content: 'What is $1+1$?\nPlease reason step by step, and put your final answer within \\boxed{}.',
      },
    ]);
    expect(buildPrompt({ problem: 'P' })).toEqual(zstMessages('P'));
  });

  it('csqa: question, lettered choices, answer as a boxed letter', () => {
    const msgs = csqaMessages('Where is money kept? ', choices);
    expect(msgs).toHaveLength(1);
    expect(msgs[0]!.content).toBe(
      [
        'Question: Where is money kept?',
        'Choices:',
        'A. bank',
        'B. library',
        'C. department store',
        'D. mall',
        'E. new york',
        'Please think step by step, then give your final answer as \\boxed{<LETTER>} where <LETTER> is one of A,B,C,D,E.',
      ].join('\n'),
    );
    expect(buildPrompt({ problem: 'Where is money kept? ', choices })).toEqual(msgs);
    expect(() => buildPrompt({ problem: 'x' }, 'csqa')).toThrow(InvalidInputError);
  });

  it("zst keeps a multiple-choice problem's choices, as LYNX's builder writes its CSQA prompt", () => {
    const msgs = buildPrompt({ problem: 'Where is money kept? ', choices }, 'zst');
    expect(msgs).toEqual(csqaMessages('Where is money kept? ', choices));
    expect(msgs[0]!.content).toContain('E. new york');
  });

  it("ours: LYNX's system prompt, the problem as the user turn; deer: DEER's system message, the question", () => {
    expect(buildPrompt({ problem: 'What is 2+2?' }, 'ours')).toEqual([
      { role: 'system', content: LYNX_SYSTEM_PROMPT },
      { role: 'user', content: 'What is 2+2?' },
    ]);
    expect(LYNX_SYSTEM_PROMPT).toMatch(/^You are a helpful assistant\. Before providing an answer to the user's query/);
    expect(LYNX_SYSTEM_PROMPT).toContain('final response within<answer> </answer> tags');
    expect(buildPrompt({ problem: 'Where is money kept?', choices }, 'ours')[1]!.content).toBe(csqaMessages('Where is money kept?', choices)[0]!.content);
    expect(buildPrompt({ problem: 'What is 2+2?' }, 'deer')).toEqual([
      { role: 'system', content: 'Please reason step by step, and put your final answer within \\boxed{}.' },
      { role: 'user', content: 'What is 2+2?' },
    ]);
    expect(DEER_SYSTEM_PROMPT).toBe('Please reason step by step, and put your final answer within \\boxed{}.');
    expect(buildPrompt({ problem: 'Q', choices }, 'deer')[1]!.content).toBe('Q\nA. bank\nB. library\nC. department store\nD. mall\nE. new york');
    expect(() => checkPromptStyle('plain')).toThrow(/use zst, csqa, ours, deer/);
  });
});

describe('custom templates', () => {
  it('plain text becomes one user message with placeholders filled once', () => {
    const t = parsePromptTemplate('Solve: {problem}\nAnswer in \\boxed{{}}.\n');
    expect(applyPromptTemplate(t, { problem: 'x={choices}' })).toEqual([
      { role: 'user', content: 'Solve: x={choices}\nAnswer in \\boxed{}.' },
    ]);
  });

  it('JSON templates carry a system message; choices and labels are available', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lynx-prompt-'));
    try {
      const path = join(dir, 't.json');
      writeFileSync(path, JSON.stringify({ system: 'Be brief.', user: '{question}\n{choices}\nOne of {labels}.' }));
      const msgs = applyPromptTemplate(loadPromptTemplate(path), { problem: 'Q?', choices: choices.slice(0, 2) });
      expect(msgs).toEqual([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Q?\nA. bank\nB. library\nOne of A,B.' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects templates that cannot work', () => {
    expect(() => parsePromptTemplate('Hello {name} {problem}')).toThrow(/unknown placeholder \{name\}/);
    expect(() => parsePromptTemplate('No placeholder here')).toThrow(/never uses \{problem\}/);
    expect(() => parsePromptTemplate('{"user": 3}')).toThrow(/needs a "user" string/);
    expect(() => parsePromptTemplate('[{"role":"robot","content":"{problem}"}]')).toThrow(/message 0/);
    expect(() => applyPromptTemplate(parsePromptTemplate('{problem} {choices}'), { problem: 'p' })).toThrow(/no choices/);
    expect(() => loadPromptTemplate('no-such-template.txt')).toThrow(/prompt template not found/);
  });
});

describe('withHintLine', () => {
  it('puts a hint line between the problem and its instruction (SplitReason’s placement)', () => {
    const [m] = withHintLine(zstMessages('What is 2+3?'), 'HINT');
    expect(m!.content).toBe(`What is 2+3?\nHINT\n${ZST_INSTRUCTION}`);
    const csqa = withHintLine(csqaMessages('Q?', [{ label: 'A', text: 'a' }, { label: 'B', text: 'b' }]), 'HINT')[0]!.content.split('\n');
    expect(csqa.at(-2)).toBe('HINT');
    expect(csqa.at(-1)).toMatch(/^Please think step by step/);
    expect(withHintLine([{ role: 'system', content: 'S' }, { role: 'user', content: 'one line' }], 'HINT')).toEqual([
      { role: 'system', content: 'S' },
      { role: 'user', content: 'one line\nHINT' },
    ]);
    expect(() => withHintLine([{ role: 'system', content: 'S' }], 'HINT')).toThrow(/user message/);
  });
});
