import type { Command } from 'commander';
import { intOption } from '../options.js';
import { writeReport } from '../../report/index.js';
import { experimentMarkdown } from '../../report/markdown.js';
import { writeFileAtomic } from '../../util/fs.js';
import { DEFAULT_MAX_TEXT_CHARS, DEFAULT_MAX_TRACES_PER_RUN } from '../../report/model.js';

interface ReportArgs {
  out?: string;
  title?: string;
  maxTraces: number;
  maxTextChars: number;
  markdown?: string;
}

/** `lynx report EXP_ROOT`: register in src/cli/commands/index.ts. */
export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write one self-contained HTML report (plots, summary table, trace viewer) for an experiment root')
    .argument('<exp-root>', 'experiment folder holding eval/<benchmark>/<method>/<setting>/ and optionally conformal/')
    .option('-o, --out <file>', 'output file (default: <exp-root>/report.html)')
    .option('--title <text>', 'page title')
    .option('--max-traces <n>', 'problems per run whose reasoning text is embedded', intOption('--max-traces', 0), DEFAULT_MAX_TRACES_PER_RUN)
    .option('--max-text-chars <n>', 'longest reasoning text embedded per problem', intOption('--max-text-chars', 0), DEFAULT_MAX_TEXT_CHARS)
    .option('--markdown <file>', "also write the results as Markdown tables ('-' for stdout)")
    .action((expRoot: string, args: ReportArgs) => {
      if (args.markdown) {
        const md = experimentMarkdown(expRoot);
        if (args.markdown === '-') process.stdout.write(md + '\n');
        else writeFileAtomic(args.markdown, md + '\n');
      }
      const { path, bytes, data } = writeReport(expRoot, args.out, {
        title: args.title,
        maxTracesPerRun: args.maxTraces,
        maxTextChars: args.maxTextChars,
      });
      const conformal = data.premature.filter((p) => p.source === 'conformal').length;
      process.stdout.write(
        `wrote ${path} (${(bytes / 1024).toFixed(0)} KiB): ${data.runs.length} runs, ${data.benchmarks.length} benchmarks, ${conformal} conformal results\n`,
      );
      for (const w of data.warnings) process.stderr.write(`note: ${w}\n`);
    });
}
