/** `lynx deer-rollouts`: LYNX on DEER's stored rollouts (pipeline/deer-rollouts.ts). */
import type { Command } from 'commander';
import { deerRolloutsStep } from '../../pipeline/deer-rollouts.js';
import { checkGrading } from '../../tasks/answer-equiv.js';
import { checkPromptStyle } from '../../tasks/prompts.js';
import { deltaOption, intOption, tokensOption } from '../options.js';
import { progressBar } from '../progress.js';

interface DeerRolloutsArgs {
  model: string;
  probe: string;
  in: string;
  out: string;
  delta: number;
  rule: string;
  exitCue: string;
  answerMaxTokens: number;
  limit?: number;
  promptStyle: string;
  policy: string;
  metrics?: string;
  json?: boolean;
  allowClipped?: boolean;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function registerDeerRollouts(program: Command): void {
  program
    .command('deer-rollouts')
    .description(
      "LYNX on pre-generated rollouts in DEER's format (as LYNX's eval_on_deer_rollouts): score each stored response's cue " +
        "events with the probe, exit where the calibrated rule says, decode the answer, and write DEER's JSONL back for check.py",
    )
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder (the model that wrote the rollouts)')
    .requiredOption('--probe <dir>', 'experiment folder (with probe/ and conformal/) or a probe folder')
    .requiredOption('--in <file>', "DEER's output JSONL (question, generated_responses, gold_answer)")
    .requiredOption('-o, --out <file>', "output JSONL in DEER's format")
    .option('--delta <d>', 'error level of the stop rule', deltaOption(), 0.1)
    .option('--rule <name>', 'lynx (per event, the paper), ltt or crc (per problem)', 'lynx')
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--answer-max-tokens <n>', 'answer tokens decoded after the exit cue', tokensOption('--answer-max-tokens'), 64)
    .option('--limit <n>', 'only the first N rollouts', intOption('--limit', 1))
    .option(
      '--prompt-style <style>',
      "the prompt the rollouts were generated from: deer (DEER's system message + the question, as LYNX's build_deer_prompt; default), zst, ours, or csqa (rows need \"choices\")",
      'deer',
    )
    .option('--allow-clipped', 'exit with a lynx rule whose quantile was clipped, as LYNX does; default: it never exits')
    .option('--policy <name>', 'answer checking of the summary: zst, deer (boxed only) or strict', 'zst')
    .option('--metrics <file>', 'also write the summary and every rollout (events, scores, tokens, answers) as JSON')
    .option('--json', 'print the summary as one JSON object')
    .action(async (args: DeerRolloutsArgs) => {
      const promptStyle = checkPromptStyle(args.promptStyle);
      let bar: ReturnType<typeof progressBar> | undefined;
      let summary;
      try {
        ({ summary } = await deerRolloutsStep({
          model: args.model,
          probe: args.probe,
          in: args.in,
          out: args.out,
          delta: args.delta,
          rule: args.rule,
          exitCue: args.exitCue,
          answerMaxTokens: args.answerMaxTokens,
          limit: args.limit,
          promptStyle,
          allowClipped: args.allowClipped,
          grading: checkGrading(args.policy),
          metrics: args.metrics,
          onRollout: (_done, total) => {
            bar ??= progressBar('deer-rollouts', total);
            bar.tick();
          },
        }));
      } finally {
        bar?.stop();
      }
      const out = process.stdout;
      if (args.json) {
        out.write(JSON.stringify(summary) + '\n');
        return;
      }
      const s = summary;
      out.write(`LYNX (${s.rule}, delta ${s.delta}) on ${s.rollouts} DEER rollouts (${s.events} cue events in ${s.withEvents}): exited ${s.exits} (${pct(s.exitRate)})\n`);
      out.write(`Tokens per rollout: stored ${s.baselineAvgTokens.toFixed(1)}, early exit ${s.earlyExitAvgTokens.toFixed(1)} (savings ${pct(s.tokenSavings)})\n`);
      if (s.graded > 0) {
        out.write(`Accuracy (${s.graded} with a gold answer): stored ${pct(s.baselineAccuracy!)}, early exit ${pct(s.earlyExitAccuracy!)}\n`);
      }
      out.write(`Wrote ${args.out}${args.metrics ? ` and ${args.metrics}` : ''} (${s.wallSec.toFixed(1)} s)\n`);
    });
}
