import type { Command } from 'commander';
import { answerWithLynx } from '../../pipeline/answer.js';
import type { ScoredCueEvent } from '../../reasoning/lynx/online.js';
import { deltaOption, intOption, probabilityOption, temperatureOption, tokensOption } from '../options.js';
import { paint } from '../terminal.js';
import { SAMPLER_HELP, samplerOf, samplerOption, type SamplerSpec } from '../sampler-arg.js';

interface RunArgs {
  model: string;
  probe: string;
  delta: number;
  rule: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  sampler?: SamplerSpec;
  seed: number;
  exitCue: string;
  json?: boolean;
  quiet?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('answer one prompt with LYNX early exit, streaming the reasoning, each cue event and its score, and the exit')
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder')
    .requiredOption('--probe <dir>', 'experiment folder (with probe/ and conformal/) or a probe folder')
    .requiredOption('-p, --prompt <text>', 'the question (sent through the zst prompt and the chat template)')
    .option('--delta <d>', 'error level of the stop rule', deltaOption(), 0.1)
    .option('--rule <name>', 'lynx (per-event, the paper), ltt or crc (per-problem)', 'lynx')
    .option('-n, --max-tokens <n>', 'token budget of the trace', tokensOption('--max-tokens'), 4096)
    .option('-t, --temperature <t>', 'sampling temperature', temperatureOption(), 0.6)
    .option('--top-p <p>', 'nucleus sampling', probabilityOption('--top-p'), 0.95)
    .option('--sampler <spec>', SAMPLER_HELP, samplerOption)
    .option('-s, --seed <n>', 'sampling seed', intOption('--seed', 0), 0)
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--json', 'print one JSON object instead of streaming')
    .option('-q, --quiet', 'do not stream the reasoning')
    .action(async (args: RunArgs) => {
      const stream = !args.json && !args.quiet;
      const out = process.stdout;
      const { answer, outcome, policy } = await answerWithLynx({
        model: args.model,
        probe: args.probe,
        rule: args.rule,
        delta: args.delta,
        question: args.prompt,
        maxTokens: args.maxTokens,
        sampler: samplerOf(args),
        seed: args.seed,
        exitCue: args.exitCue,
        onToken: stream ? (piece) => out.write(piece) : undefined,
        onEvent: stream ? (ev: ScoredCueEvent) => out.write(paint(ev.exit ? 'green' : 'yellow', ` ⟦${ev.cue} p=${ev.score.toFixed(3)}${ev.exit ? ' → exit' : ''}⟧ `)) : undefined,
      });
      if (args.json) {
        out.write(JSON.stringify({ answer, ...outcome, rule: policy.rule }) + '\n');
      } else {
        if (stream) out.write('\n');
        const exit = outcome.exit;
        out.write(
          paint('bold', exit ? `\nEarly exit at cue event ${exit.event} (p=${exit.score?.toFixed(3)}), after ${exit.position} reasoning tokens.\n` : `\nNo early exit (${outcome.end}).\n`),
        );
        out.write(`Answer: ${answer ?? '(none)'}\n`);
        out.write(
          `Tokens: ${outcome.tokens.total} output (reasoning ${outcome.tokens.reasoning} + exit cue ${outcome.tokens.exitCue} + answer ${outcome.tokens.answer}), ` +
            `${outcome.tokens.decoded} decoded, ${outcome.tokens.prefilled} prefilled, ${(outcome.wallMs / 1000).toFixed(1)} s\n`,
        );
      }
    });
}
