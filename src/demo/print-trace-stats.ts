/**
 * Print the statistics of generated demo traces (and of the demo tokenizer and a packed corpus).
 *
 *   npx tsx src/demo/print-trace-stats.ts [--count 5000] [--seed 1] [--levels 1-5] [--json] [--example]
 */
import { buildCorpus, buildDemoTokenizer, tokenizeExample } from './corpus.js';
import { formatTraceStats, traceStatistics } from './trace-stats.js';
import { generateTraces } from './traces.js';
import { parseDemoBenchmarkName } from '../tasks/demo/benchmark.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const count = Number(arg('count') ?? 5000);
const seed = Number(arg('seed') ?? 1);
const levels = arg('levels') ? parseDemoBenchmarkName(`demo:${arg('levels')}`).levels : undefined;

const tok = buildDemoTokenizer();
const traces = generateTraces(count, { seed, levels });
const count1 = (text: string) => tok.encode(text).length;
const stats = traceStatistics(traces, count1);
const lengths = traces.map((t) => tokenizeExample(tok, t).ids.length).sort((a, b) => a - b);
const quantile = (q: number) => lengths[Math.min(lengths.length - 1, Math.floor(q * lengths.length))]!;

if (process.argv.includes('--json')) {
  process.stdout.write(JSON.stringify({ seed, tokenizerVocab: tok.vocabSize, stats, exampleTokens: { p50: quantile(0.5), p95: quantile(0.95), max: quantile(1) } }, null, 2) + '\n');
} else {
  process.stdout.write(`seed ${seed}; demo tokenizer: ${tok.vocabSize} tokens (${tok.merges.length} merges)\n`);
  process.stdout.write(formatTraceStats(stats) + '\n\n');
  process.stdout.write(`whole example (prompt + completion + EOS) tokens: median ${quantile(0.5)}, p95 ${quantile(0.95)}, max ${quantile(1)}\n`);
  const corpus = buildCorpus(tok, { seed, nSequences: 200, nCtx: 512 });
  process.stdout.write(
    `packed corpus (200 x 512): ${corpus.examples.length} examples, fill ${(corpus.stats.fill * 100).toFixed(1)}%, ` +
      `${corpus.stats.droppedTooLong} of ${corpus.stats.traces} traces longer than the window\n`,
  );
  if (process.argv.includes('--example')) {
    const t = traces[0]!;
    process.stdout.write(`\n--- example (level ${t.problem.level}) ---\n${t.prompt}\n<think>\n${t.completion}\n`);
  }
}
