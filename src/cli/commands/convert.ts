import type { Command } from 'commander';
import { convertToGguf, type ConvertType } from '../../import/convert.js';
import { InvalidInputError } from '../../util/errors.js';

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('convert a Hugging Face folder (Llama, Mistral, Qwen2, Qwen3) or a llama2.c checkpoint to GGUF')
    .argument('<src>', 'Hugging Face model folder, or llama2.c .bin checkpoint')
    .requiredOption('-o, --out <file>', 'output .gguf')
    .option('--type <type>', 'f32, f16, bf16, q8_0 or auto (the checkpoint dtype)', 'auto')
    .option('--tokenizer <file>', 'llama2.c tokenizer.bin (for .bin checkpoints)')
    .option('--name <name>', 'general.name to record')
    .action((src: string, opts: { out: string; type: string; tokenizer?: string; name?: string }) => {
      if (!['f32', 'f16', 'bf16', 'q8_0', 'auto'].includes(opts.type)) {
        throw new InvalidInputError(`--type must be f32, f16, bf16, q8_0 or auto (got ${opts.type})`);
      }
      const r = convertToGguf(src, opts.out, { type: opts.type as ConvertType, tokenizer: opts.tokenizer, name: opts.name });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
}
