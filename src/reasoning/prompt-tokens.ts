/**
 * A benchmark problem to the prompt tokens a reasoning model starts thinking from: the prompt style's chat messages,
 * rendered through the model's own chat template (from the GGUF) with the generation prompt, then tokenized with
 * special tokens parsed.
 */
import { Template } from '@huggingface/jinja';
import type { LlamaModel } from '../engine/index.js';
import { buildPrompt, type ChatMessage, type PromptStyle } from '../eval/prompts.js';
import type { Problem } from '../eval/benchmarks.js';
import { InvalidInputError } from '../util/errors.js';

const templates = new WeakMap<LlamaModel, Template>();

/** Render chat messages with the model's chat template (`add_generation_prompt` on). */
export function renderChatForModel(model: LlamaModel, messages: ChatMessage[]): string {
  let template = templates.get(model);
  if (!template) {
    const source = model.info.chatTemplate;
    if (!source) throw new InvalidInputError(`${model.info.path} has no chat template (tokenizer.chat_template): give a prompt template`);
    template = new Template(source);
    templates.set(model, template);
  }
  const piece = (id: number | undefined) => (id === undefined ? '' : model.detokenize([id]));
  return template.render({
    messages,
    add_generation_prompt: true,
    bos_token: piece(model.info.special.bos),
    eos_token: piece(model.info.special.eos),
  });
}

/** Prompt tokens of a problem: chat template render, then tokenization with special tokens parsed and no extra BOS. */
export function problemPromptTokens(model: LlamaModel, problem: Pick<Problem, 'problem' | 'choices'>, style?: PromptStyle): number[] {
  const text = renderChatForModel(model, buildPrompt(problem, style));
  // The template writes BOS itself where the model wants it; do not add another.
  return model.tokenize(text, { addSpecial: false, parseSpecial: true });
}
