/**
 * Run in a child process by test/engine-lifecycle.test.ts: prefills a long prompt over and over, with a SIGTERM
 * handler like a command's (report, then exit 130). The handler reports whether it ran while a decode was running on
 * a worker thread; if it lands between two decodes it waits for the next signal, so the test learns whether the
 * event loop serves signals during a decode, not how fast.
 *
 * Usage: node --import tsx test/helpers/engine-signal-probe.ts MODEL.gguf
 */
import { LlamaModel } from '../../src/engine/index.js';

const model = LlamaModel.load(process.argv[2]!);
const context = model.createContext({ nCtx: 2048, nSeqMax: 1, nBatch: 1024, threads: 1 });
const seq = context.createSequence();
const tokens = Array.from({ length: 1024 }, (_, i) => 65 + (i % 26));
let betweenDecodes = 0;

process.on('SIGTERM', () => {
  if (!(context as unknown as { working: boolean }).working) {
    betweenDecodes++;
    return;
  }
  process.stdout.write(JSON.stringify({ duringDecode: true, decodeCalls: context.stats.decodeCalls, betweenDecodes }) + '\n');
  process.exit(130);
});

let announced = false;
for (;;) {
  const appended = seq.append(tokens);
  if (!announced) {
    await new Promise((r) => setImmediate(r)); // after the flush that started the decode
    process.stdout.write('decoding\n');
    announced = true;
  }
  await appended;
  seq.truncate(0);
}
