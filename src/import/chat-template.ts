/**
 * Chat templates rendered with @huggingface/jinja the way transformers' `apply_chat_template` renders them
 * (trim_blocks and lstrip_blocks, special tokens as strings, `add_generation_prompt`, extra keyword arguments such
 * as Qwen3's `enable_thinking`). The template comes from a model folder or from GGUF metadata
 * (`tokenizer.chat_template`).
 */
import { Template } from '@huggingface/jinja';
import { InvalidInputError } from '../util/errors.js';
import { readChatTemplate, readTokenizerConfig } from './hf-vocab.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  [key: string]: unknown;
}

export interface ChatTemplateTokens {
  bos_token?: string;
  eos_token?: string;
  pad_token?: string;
  unk_token?: string;
}

export interface RenderOptions {
  /** End with the assistant's turn opening (R1-style templates open `<think>\n` there). Default true. */
  addGenerationPrompt?: boolean;
  /** Extra variables, e.g. { enable_thinking: false } for Qwen3. */
  extra?: Record<string, unknown>;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    readonly tokens: ChatTemplateTokens = {},
  ) {
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new InvalidInputError(`the chat template does not parse: ${(e as Error).message}`);
    }
  }

  /** The template of a Hugging Face folder (tokenizer_config.json, chat_template.jinja or chat_template.json). */
  static fromFolder(folder: string): ChatTemplate {
    const tc = readTokenizerConfig(folder);
    const source = readChatTemplate(folder, tc);
    if (source === undefined) throw new InvalidInputError(`${folder} has no chat template (tokenizer_config.json "chat_template" or chat_template.jinja)`);
    const tok = (k: string): string | undefined => {
      const v = tc[k];
      return typeof v === 'string' ? v : v && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined;
    };
    return new ChatTemplate(source, { bos_token: tok('bos_token'), eos_token: tok('eos_token'), pad_token: tok('pad_token'), unk_token: tok('unk_token') });
  }

  /**
   * The template stored in a GGUF file, with its special tokens' texts. `meta` reads a metadata value
   * (e.g. `GgufFile.get` or the engine's `LlamaModel.meta`); `tokenText` gives a token's text by id.
   */
  static fromGguf(meta: (key: string) => unknown, tokenText: (id: number) => string | undefined): ChatTemplate {
    const source = meta('tokenizer.chat_template');
    if (typeof source !== 'string') throw new InvalidInputError('the model has no chat template (tokenizer.chat_template)');
    const text = (key: string) => {
      const id = meta(key);
      return id === undefined || id === null ? undefined : tokenText(Number(id));
    };
    return new ChatTemplate(source, {
      bos_token: text('tokenizer.ggml.bos_token_id'),
      eos_token: text('tokenizer.ggml.eos_token_id'),
      pad_token: text('tokenizer.ggml.padding_token_id'),
      unk_token: text('tokenizer.ggml.unknown_token_id'),
    });
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    try {
      // transformers passes the texts of the special tokens the tokenizer has; absent ones stay undefined.
      const defined = Object.fromEntries(Object.entries(this.tokens).filter(([, v]) => v !== undefined));
      return this.template.render({ ...defined, ...opts.extra, messages, add_generation_prompt: opts.addGenerationPrompt ?? true });
    } catch (e) {
      throw new InvalidInputError(`the chat template failed to render: ${(e as Error).message}`);
    }
  }
}

/** Whether a rendered generation prompt already opens a thinking block (R1-Distill, QwQ), so generation starts inside it. */
export function opensThinking(rendered: string, thinkStart = '<think>'): boolean {
  return rendered.trimEnd().endsWith(thinkStart);
}
