import { describe, expect, it } from 'vitest';
import {
  allBoxed,
  answerAfterPhrase,
  extractAnswer,
  extractChoiceAnswer,
  extractMathAnswer,
  lastBoxedContent,
  lastNumber,
} from '../src/tasks/answer-extract.js';

describe('boxed answers', () => {
  it('takes the last brace-balanced box', () => {
    expect(lastBoxedContent('first \\boxed{1} then \\boxed{\\frac{1}{2}}.')).toBe('\\frac{1}{2}');
    expect(lastBoxedContent('\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}')).toBe('\\left( 3, \\frac{\\pi}{2} \\right)');
    expect(lastBoxedContent('$\\boxed{\\{1,2\\}}$')).toBe('\\{1,2\\}');
    expect(lastBoxedContent('\\fbox{7}')).toBe('7');
    expect(lastBoxedContent('so $\\boxed 5$.')).toBe('5');
    expect(lastBoxedContent('answer \\boxed 12.')).toBe('12');
    expect(lastBoxedContent('no box here')).toBeNull();
  });

  it('skips a box cut off by the end of generation and uses the previous complete one', () => {
    expect(lastBoxedContent('\\boxed{3} wait, maybe \\boxed{\\frac{1}{')).toBe('3');
    expect(lastBoxedContent('\\boxed{\\frac{1}{')).toBeNull();
  });

  it('reports nested boxes once, as the outer box', () => {
    expect(allBoxed('\\boxed{\\boxed{5}} and \\fbox{6}')).toEqual(['\\boxed{5}', '6']);
    expect(lastBoxedContent('\\boxed{\\boxed{5}}')).toBe('\\boxed{5}');
  });

  it('ignores commands that merely start with boxed', () => {
    expect(lastBoxedContent('\\boxedsomething{3}')).toBeNull();
  });
});

describe('fallbacks', () => {
  it('uses the text after the answer phrase', () => {
    expect(answerAfterPhrase('Thus the answer is 42.')).toBe('42');
    expect(answerAfterPhrase('Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.')).toBe('\\frac{3}{4}');
    expect(answerAfterPhrase('**Final Answer:** 17\nmore text')).toBe('17');
    expect(answerAfterPhrase('The answer is 5. Wait, no, the answer is 6.')).toBe('6');
    expect(answerAfterPhrase('nothing')).toBeNull();
  });

  it('falls back to the last number', () => {
    expect(lastNumber('we get 3, then 1,234 apples')).toBe('1,234');
    expect(lastNumber('ratio 3 / 4')).toBe('3/4');
    expect(lastNumber('-2.5 and then .5')).toBe('.5');
    expect(lastNumber('none')).toBeNull();
  });

  it('orders boxed, phrase, number; DEER takes boxed answers only', () => {
    expect(extractMathAnswer('the answer is 3 but \\boxed{4}')).toEqual({ answer: '4', method: 'boxed' });
    expect(extractMathAnswer('12 apples, so the answer is 3')).toEqual({ answer: '3', method: 'phrase' });
    expect(extractMathAnswer('we have 12 apples and 3 pears')).toEqual({ answer: '3', method: 'number' });
    expect(extractMathAnswer('we have 12 apples', { fallback: 'boxed' })).toEqual({ answer: null, method: null });
    expect(extractMathAnswer('nothing at all')).toEqual({ answer: null, method: null });
  });
});

describe('multiple choice', () => {
  const choices = ['bank', 'library', 'department store', 'mall', 'new york'].map((text, i) => ({
    label: String.fromCharCode(65 + i),
    text,
  }));

  it('reads the letter from a box in its usual spellings', () => {
    for (const box of ['C', '(C)', '\\text{C}', '\\textbf{(C)}', 'C. department store', 'c'])
      expect(extractChoiceAnswer(`so \\boxed{${box}}`, choices)).toEqual({ answer: 'C', method: 'boxed' });
    expect(extractChoiceAnswer('\\boxed{mall}', choices)).toEqual({ answer: 'D', method: 'boxed' });
  });

  it('falls back to phrases, parenthesised letters and choice texts', () => {
    expect(extractChoiceAnswer('A door is... The answer is (B).', choices)).toEqual({ answer: 'B', method: 'phrase' });
    expect(extractChoiceAnswer('I would pick (E) here', choices)).toEqual({ answer: 'E', method: 'letter' });
    expect(extractChoiceAnswer('A person would go to the mall.', choices)).toEqual({ answer: 'D', method: 'choice-text' });
    // the article "A" at the start of a sentence is not an answer
    expect(extractChoiceAnswer('A revolving door is nice.', choices)).toEqual({ answer: null, method: null });
  });

  it('dispatches on whether a problem has choices', () => {
    expect(extractAnswer('\\boxed{B}', { choices }).answer).toBe('B');
    expect(extractAnswer('\\boxed{B}', {}).answer).toBe('B');
    expect(extractAnswer('so 7', {}).answer).toBe('7');
  });
});
