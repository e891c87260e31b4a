/**
 * A benchmark problem to the prompt tokens a reasoning model starts thinking from: the prompt style's chat messages,
 * rendered through the model's own chat template (from the GGUF) with the generation prompt, then tokenized with
 * special tokens parsed.
 */
import type { Vocabulary } from '../backends/generator.js';
import { buildPrompt, withHintLine, type ChatMessage, type PromptStyle } from '../tasks/prompts.js';
import type { Problem } from '../tasks/problem.js';
import { ChatTemplate } from '../import/chat-template.js';
import { InvalidInputError } from '../util/errors.js';

const templates = new WeakMap<Vocabulary, ChatTemplate>();

/** The model's chat template as llama.cpp reads it from the GGUF, with the texts of llama.cpp's BOS and EOS tokens. */
function chatTemplateOf(model: Vocabulary): ChatTemplate {
  let template = templates.get(model);
  if (!template) {
    const source = model.info.chatTemplate;
    if (!source) throw new InvalidInputError(`${model.info.path} has no chat template (tokenizer.chat_template): give a prompt template`);
    const piece = (id: number | undefined) => (id === undefined ? '' : model.detokenize([id]));
    template = new ChatTemplate(source, { bos_token: piece(model.info.special.bos), eos_token: piece(model.info.special.eos) });
    templates.set(model, template);
  }
  return template;
}

/** Render chat messages with the model's chat template (`add_generation_prompt` on). */
export function renderChatForModel(model: Vocabulary, messages: ChatMessage[]): string {
  return chatTemplateOf(model).render(messages);
}

/**
 * Prompt tokens of a problem: chat template render, then tokenization with special tokens parsed and no extra BOS.
 * `hint`: a line put between the problem and its instruction (SplitReason's offloading hint, `withHintLine`).
 */
export function problemPromptTokens(model: Vocabulary, problem: Pick<Problem, 'problem' | 'choices'>, style?: PromptStyle, hint?: string): number[] {
  const messages = buildPrompt(problem, style);
  const text = renderChatForModel(model, hint === undefined ? messages : withHintLine(messages, hint));
  // The template writes BOS itself where the model wants it; do not add another.
  return model.tokenize(text, { addSpecial: false, parseSpecial: true });
}
