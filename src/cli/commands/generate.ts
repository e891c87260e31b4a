import type { Command } from 'commander';
import { LlamaContext, LlamaModel } from '../../engine/index.js';
import { resolveModelPath } from '../../pipeline/model.js';
import { intOption, probabilityOption, temperatureOption, tokensOption } from '../options.js';
import { InvalidInputError, UsageError } from '../../util/errors.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';

interface GenerateArgs {
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
  program
    .command('generate')
    .description('generate text from a prompt (raw, no chat template)')
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
    .option('--json', 'print one JSON object: tokens, text, timings')
    .action(async (args: GenerateArgs) => {
      const model = LlamaModel.load(await resolveModelPath(args.model));
      const ctx = new LlamaContext(model, { nCtx: args.ctx, nSeqMax: 1, taps: false });
      try {
        const seq = ctx.createSequence();
        const prompt = model.tokenize(args.prompt, { addSpecial: false, parseSpecial: true });
        if (args.bos) {
          if (model.info.special.bos === undefined) throw new InvalidInputError(`--bos: ${args.model} has no BOS token`);
          prompt.unshift(model.info.special.bos);
        }
        if (prompt.length === 0) throw new UsageError('the prompt is empty: give --prompt text or --bos');
        if (prompt.length + args.maxTokens > ctx.nCtx) {
          throw new UsageError(
            `the prompt (${prompt.length} tokens) and --max-tokens ${args.maxTokens} need ${prompt.length + args.maxTokens} tokens, but the context holds ${ctx.nCtx} (--ctx): ` +
              `use -n ${Math.max(1, ctx.nCtx - prompt.length)} or less, or a larger --ctx`,
          );
        }
        const t0 = performance.now();
        await seq.append(prompt);
        const t1 = performance.now();
        const tokens: number[] = [];
        let text = '';
        for await (const t of seq.generate({
          maxTokens: args.maxTokens,
          sampler: { ...samplerOf(args), topK: args.topK, minP: args.minP, seed: args.seed },
        })) {
          if (t.stopped) break;
          tokens.push(t.token);
          text += t.text;
          if (!args.json) process.stdout.write(t.text);
        }
        const t2 = performance.now();
        if (args.json) {
          const out = {
            model: model.info.path,
            promptTokens: prompt,
            tokens,
            text,
            timings: { prefillMs: t1 - t0, decodeMs: t2 - t1, tokensPerSecond: tokens.length / ((t2 - t1) / 1000) },
          };
          process.stdout.write(JSON.stringify(out) + '\n');
        } else {
          process.stdout.write('\n');
        }
      } finally {
        ctx.dispose();
        model.dispose();
      }
    });
}
