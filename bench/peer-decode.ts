/**
 * The benchmark's peer, run in a child process by bench/engine.ts so that a stuck or crashing peer can be killed at a
 * deadline without taking the benchmark with it:
 *
 *   node --import tsx bench/peer-decode.ts <model.gguf> <tokens> <reps> <threads>
 *
 * Prints one JSON line: { name, decodeTokensPerSecond } or { name, decodeTokensPerSecond: null, error }.
 */
const [path, tokensArg, repsArg, threadsArg] = process.argv.slice(2);
const tokens = Number(tokensArg);
const reps = Number(repsArg);
const threads = Number(threadsArg);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

try {
  // The peer is not a dependency: npm's registry mirror here lacks some of its platform packages, which breaks
  // `npm ci`, and it pulls ~700 MB. Install it next to the project with `npm run bench:peer` to compare.
  const peerModule = 'node-llama-cpp';
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const { getLlama } = (await import(peerModule)) as any;
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const model = await llama.loadModel({ modelPath: path });
  // Same thread count as our engine: left to its default, node-llama-cpp oversubscribed a 2-core machine and a
  // 3 x 64-token decode ran for minutes.
  const ctx = await model.createContext({ contextSize: 1024, sequences: 1, threads });
  const rates: number[] = [];
  for (let r = 0; r < reps; r++) {
    const seq = ctx.getSequence();
    const prompt = model.tokenize('The benchmark prompt for decoding speed.');
    let n = 0;
    let t0 = 0;
    for await (const _ of seq.evaluate(prompt, { temperature: 0 })) {
      if (n === 0) t0 = performance.now(); // the first token ends the prefill
      if (++n > tokens) break;
    }
    rates.push(tokens / ((performance.now() - t0) / 1000));
    seq.dispose();
  }
  await ctx.dispose();
  await model.dispose();
  console.log(JSON.stringify({ name: 'node-llama-cpp@3.22.1 (LlamaContextSequence.evaluate)', decodeTokensPerSecond: median(rates) }));
} catch (e) {
  const missing = (e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
  console.log(JSON.stringify({ name: 'node-llama-cpp', decodeTokensPerSecond: null, error: missing ? 'not installed (run `npm run bench:peer` once)' : (e as Error).message }));
}
process.exit(0);
