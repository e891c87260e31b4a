import type { Command } from 'commander';
import { generateStep } from '../../pipeline/generate.js';
import { resolveModelPath } from '../../pipeline/model.js';
import { decodingOptions, decodingSpecOf, type DecodingArgs } from '../decoding-args.js';
import { intOption, probabilityOption, temperatureOption, tokensOption } from '../options.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';

interface GenerateArgs extends DecodingArgs {
  model: string;
  prompt: string;
  bos?: boolean;
  maxTokens: number;
  temperature: number;
  topP?: number;
  sampler?: SamplerSpec;
  topK?: number;
  minP?: number;
  seed: number;
  json?: boolean;
  ctx: number;
}

export function registerGenerate(program: Command): void {
  const command = program
    .command('generate')
    .description('generate text from a prompt (raw, no chat template), with the full model or speculative decoding (--draft) or layer exit (--layer-exit)')
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
    .requiredOption('-p, --prompt <text>', 'prompt text (special tokens such as <think> are parsed)')
    .option('--bos', 'start with the BOS token')
    .option('-n, --max-tokens <n>', 'tokens to generate', tokensOption('--max-tokens'), 128)
    .option('-t, --temperature <t>', '0 = greedy', temperatureOption(), 0)
    .option('--top-p <p>', 'nucleus sampling', probabilityOption('--top-p'))
    .option('--top-k <k>', 'top-k sampling', intOption('--top-k', 0))
    .option('--min-p <p>', 'min-p sampling', probabilityOption('--min-p'))
    .option('--sampler <spec>', SAMPLER_HELP, samplerOption)
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--ctx <n>', 'context size', intOption('--ctx', 16, 2 ** 24), 4096)
    .option('--json', 'print one JSON object: tokens, text, timings (and drafted/accepted tokens with --draft)');
  decodingOptions(command).action(async (args: GenerateArgs) => {
    const r = await generateStep({
      model: await resolveModelPath(args.model),
      prompt: args.prompt,
      bos: args.bos,
      maxTokens: args.maxTokens,
      sampler: { ...samplerOf(args), topK: args.topK, minP: args.minP, seed: args.seed },
      ctx: args.ctx,
      threads: args.threads,
      decoding: decodingSpecOf(args),
      onText: args.json ? undefined : (piece) => process.stdout.write(piece),
      log: (line) => process.stderr.write(`${line}\n`),
    });
    if (args.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return;
    }
    process.stdout.write('\n');
    const d = r.decoding;
    if (d) {
      const rate = d.acceptanceRate === null ? '' : `, accepted ${d.accepted}/${d.drafted} drafts (${(100 * d.acceptanceRate).toFixed(1)}%)`;
      const exits = d.exits ? `, head exits ${Object.entries(d.exits).map(([l, n]) => `${n} at block ${l}`).join(', ') || 'none'}` : '';
      process.stderr.write(`${d.mode}${d.lossless ? '' : ' — LOSSY: tokens may differ from the full model'}: ${r.tokens.length} tokens, ${r.timings.tokensPerSecond.toFixed(1)} tok/s${rate}${exits}\n`);
    }
  });
}
