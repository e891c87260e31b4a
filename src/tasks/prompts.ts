/**
 * Prompt styles. Each returns chat messages; rendering them through the model's chat template (with the
 * generation prompt) is the caller's job, so prompts stay independent of any tokenizer.
 *
 * - `zst`: LYNX's "Zero-Step" style: one user message, the problem followed by
 *   "\nPlease reason step by step, and put your final answer within \boxed{}." (LYNX's build scripts use exactly
 *   this text, a newline between problem and instruction, no system message).
 *   A problem with choices (CommonsenseQA) keeps them: `zst` then writes the `csqa` text, as LYNX's
 *   `build_dataset_vllm_hybrid.py` `_build_prompt` does for `--prompt-style zst` on CSQA.
 * - `csqa`: LYNX's CommonsenseQA style: "Question: ...", "Choices:", one "A. text" line per choice, then the
 *   instruction to answer as \boxed{<LETTER>}.
 * - `ours`: LYNX's other style (`--prompt-style ours`, `probing_utils.make_prompt`): its system prompt asking for
 *   `<think> ... </think><answer> ... \boxed{} </answer>`, then the problem (the csqa text for a problem with choices,
 *   as LYNX formats CSQA problems) as the user message.
 * - `deer`: DEER's (`vllm-deer.py`): the system message "Please reason step by step, and put your final answer within
 *   \boxed{}." and the question as the user message (choices, if any, as "A. text" lines after it). `lynx
 *   deer-rollouts` rebuilds it, as LYNX's `eval_on_deer_rollouts.py` `build_deer_prompt` does.
 * - custom templates from a file, with placeholders {problem}, {question}, {choices}, {labels}.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import type { Problem } from './problem.js';

// A type, not an interface, so that it is assignable to the chat template's open message type (ChatTemplate.render).
export type ChatMessage = {
  role: 'system' | 'user' | 'assistant';
  content: string;
};

export type PromptStyle = 'zst' | 'csqa' | 'ours' | 'deer';

export const PROMPT_STYLES: readonly PromptStyle[] = ['zst', 'csqa', 'ours', 'deer'];

/** A prompt style named on a command line, checked. */
export function checkPromptStyle(s: string): PromptStyle {
  if (!(PROMPT_STYLES as readonly string[]).includes(s)) throw new InvalidInputError(`unknown prompt style '${s}': use ${PROMPT_STYLES.join(', ')}`);
  return s as PromptStyle;
}

export const ZST_INSTRUCTION = 'Please reason step by step, and put your final answer within \\boxed{}.';

/** LYNX's system prompt of `--prompt-style ours` (`probing_utils.SYSTEM_PROMPT`, verbatim). */
export const LYNX_SYSTEM_PROMPT =
  'You are a helpful assistant. Before providing an answer to the user\'s query, ' +
  'you first engage in a structured step-by-step reasoning process, which you ' +
  'enclose within <think> </think> tags. Once you reach a conclusion, you present ' +
  'your final response within<answer> </answer> tags, ensuring clarity, i.e., ' +
  '<think> reasoning process here </think><answer> answer here </answer>. ' +
  'In your answer, briefly summarize your thought process before stating the final ' +
  'result, which you format using \\boxed{} for emphasis, e.g., ' +
  '<answer> I solve the problem by ... The final answer is \\boxed{ANSWER} </answer>.';

/** DEER's system message (`vllm-deer.py` `sys_prompt`). */
export const DEER_SYSTEM_PROMPT = ZST_INSTRUCTION;

export function zstMessages(problem: string): ChatMessage[] {
  return [{ role: 'user', content: `${problem}\n${ZST_INSTRUCTION}` }];
}

export function choiceLines(choices: readonly { label: string; text: string }[]): string {
  return choices.map((c) => `${c.label}. ${c.text}`).join('\n');
}

/** LYNX's CSQA text (`_format_csqa`): question, choices, the letter instruction. */
export function csqaText(question: string, choices: readonly { label: string; text: string }[]): string {
  const labels = choices.map((c) => c.label).join(',');
  return [
    `Question: ${question.trim()}`,
    'Choices:',
    choiceLines(choices),
    `Please think step by step, then give your final answer as \\boxed{<LETTER>} where <LETTER> is one of ${labels}.`,
  ].join('\n');
}

export function csqaMessages(question: string, choices: readonly { label: string; text: string }[]): ChatMessage[] {
  return [{ role: 'user', content: csqaText(question, choices) }];
}

/** The default style of a problem: `csqa` when it has choices, else `zst`. */
export function defaultPromptStyle(problem: Pick<Problem, 'choices'>): PromptStyle {
  return problem.choices && problem.choices.length > 0 ? 'csqa' : 'zst';
}

/**
 * Messages with a hint line put into the last user turn, between the problem and its closing instruction line (where
 * SplitReason puts its offloading hint: `{question}\n{hint}\n{instruction}`). A turn of one line gets the hint after it.
 */
export function withHintLine(messages: readonly ChatMessage[], hint: string): ChatMessage[] {
  const last = messages.map((m) => m.role).lastIndexOf('user');
  if (last < 0) throw new InvalidInputError('a prompt hint needs a user message to go into');
  return messages.map((m, i) => {
    if (i !== last) return { ...m };
    const cut = m.content.lastIndexOf('\n');
    const content = cut < 0 ? `${m.content}\n${hint}` : `${m.content.slice(0, cut)}\n${hint}${m.content.slice(cut)}`;
    return { role: m.role, content };
  });
}

export function buildPrompt(problem: Pick<Problem, 'problem' | 'choices'>, style: PromptStyle = defaultPromptStyle(problem)): ChatMessage[] {
  const hasChoices = problem.choices !== undefined && problem.choices.length > 0;
  switch (style) {
    case 'zst':
      // LYNX's zst on a multiple-choice problem is its CSQA text: the choices must stay in the prompt.
      return hasChoices ? csqaMessages(problem.problem, problem.choices!) : zstMessages(problem.problem);
    case 'ours':
      return [
        { role: 'system', content: LYNX_SYSTEM_PROMPT },
        { role: 'user', content: hasChoices ? csqaText(problem.problem, problem.choices!) : problem.problem },
      ];
    case 'deer':
      return [
        { role: 'system', content: DEER_SYSTEM_PROMPT },
        { role: 'user', content: hasChoices ? `${problem.problem}\n${choiceLines(problem.choices!)}` : problem.problem },
      ];
    case 'csqa':
      if (!problem.choices || problem.choices.length === 0)
        throw new InvalidInputError('the csqa prompt style needs a problem with choices');
      return csqaMessages(problem.problem, problem.choices);
    default:
      throw new UnsupportedError(`unknown prompt style "${style as string}"; expected ${PROMPT_STYLES.join(', ')} or a template file`);
  }
}

/**
 * A prompt template: either plain text (one user message) or JSON `{"system"?: "...", "user": "..."}` or a JSON
 * list of `{role, content}` messages. Placeholders: {problem} (= {question}), {choices} (one "A. text" line per
 * choice), {labels} ("A,B,C,D,E"). Write {{ and }} for literal braces, so `\boxed{{}}` gives `\boxed{}`.
 */
export interface PromptTemplate {
  messages: ChatMessage[];
  source: string;
}

const PLACEHOLDERS = new Set(['problem', 'question', 'choices', 'labels']);

export function parsePromptTemplate(text: string, source = '<inline>'): PromptTemplate {
  const trimmed = text.trim();
  let messages: ChatMessage[];
  // JSON when it parses as an object or a list (a .json file must); otherwise plain text such as "{problem}..."
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch (e) {
    if (source.endsWith('.json'))
      throw new InvalidInputError(`${source}: prompt template is not valid JSON: ${(e as Error).message}`);
  }
  if (json !== null && typeof json === 'object') {
    if (Array.isArray(json)) {
      messages = json.map((m, i) => {
        const mm = m as Partial<ChatMessage>;
        if (!mm || !['system', 'user', 'assistant'].includes(mm.role as string) || typeof mm.content !== 'string')
          throw new InvalidInputError(`${source}: message ${i} needs a role (system|user|assistant) and a string content`);
        return { role: mm.role!, content: mm.content };
      });
    } else {
      const o = json as { system?: unknown; user?: unknown };
      if (typeof o.user !== 'string') throw new InvalidInputError(`${source}: a JSON prompt template needs a "user" string`);
      messages = [];
      if (typeof o.system === 'string') messages.push({ role: 'system', content: o.system });
      messages.push({ role: 'user', content: o.user });
    }
  } else {
    messages = [{ role: 'user', content: text.replace(/\n$/, '') }];
  }
  for (const m of messages) {
    for (const name of placeholdersIn(m.content))
      if (!PLACEHOLDERS.has(name))
        throw new InvalidInputError(`${source}: unknown placeholder {${name}}; use {problem}, {choices} or {labels} ({{ and }} for literal braces)`);
  }
  if (!messages.some((m) => /\{(problem|question)\}/.test(m.content.replace(/\{\{|\}\}/g, ''))))
    throw new InvalidInputError(`${source}: the prompt template never uses {problem}`);
  return { messages, source };
}

export function loadPromptTemplate(path: string): PromptTemplate {
  if (!existsSync(path)) throw new InvalidInputError(`prompt template not found: ${path}`);
  return parsePromptTemplate(readFileSync(path, 'utf8'), path);
}

function placeholdersIn(s: string): string[] {
  return [...s.replace(/\{\{|\}\}/g, '').matchAll(/\{([A-Za-z_]+)\}/g)].map((m) => m[1]!);
}

export function applyPromptTemplate(template: PromptTemplate, problem: Pick<Problem, 'problem' | 'choices'>): ChatMessage[] {
  const values: Record<string, string> = {
    problem: problem.problem,
    question: problem.problem,
    choices: problem.choices ? choiceLines(problem.choices) : '',
    labels: problem.choices ? problem.choices.map((c) => c.label).join(',') : '',
  };
  if (!problem.choices && template.messages.some((m) => /\{(choices|labels)\}/.test(m.content.replace(/\{\{|\}\}/g, ''))))
    throw new InvalidInputError(`${template.source}: the template uses {choices} but the problem has no choices`);
  return template.messages.map((m) => ({ role: m.role, content: fill(m.content, values) }));
}

function fill(s: string, values: Record<string, string>): string {
  // One pass, so a problem text containing "{choices}" is not substituted again.
  return s.replace(/\{\{|\}\}|\{([A-Za-z_]+)\}/g, (all, name: string | undefined) => {
    if (all === '{{') return '{';
    if (all === '}}') return '}';
    return values[name!] ?? all;
  });
}
