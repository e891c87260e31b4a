/**
 * The loop of a trainer that takes one optimizer step per row (the graph trainer; a head trainer on hidden states
 * the same way): epochs of rows in `epochOrder`, the cosine schedule, chunks of `chunkSize` steps between which the
 * event loop runs and `signal` / `betweenChunks` are honoured, evaluations before training, every `evalEvery` steps
 * and at the end, and a clock that counts training time only.
 */
import { cosineLr, epochOrder } from './schedule.js';
import type { CheckedTrainOptions, EvalRecord, TrainOptions, TrainingReport, TrainingStep } from './options.js';

export interface TrainingRun {
  /** Rows of training data; a step trains on one. */
  nRows: number;
  /** Positions that carry loss in one row (for the token counts). */
  tokensPerRow: number;
  /** One optimizer step on `row` at learning rate `lr`; loss and accuracy measured before the update. */
  step(row: number, lr: number): { loss: number; accuracy: number };
  /** Loss and accuracy on the validation data; omit when there is none. */
  evaluate?(): { loss: number; accuracy: number; rows: number };
}

export type LoopReport = Pick<TrainingReport, 'steps' | 'evals' | 'plannedSteps' | 'tokens' | 'seconds' | 'tokensPerSecond' | 'stopped'>;

export async function runTrainingLoop(run: TrainingRun, opts: TrainOptions, o: CheckedTrainOptions): Promise<LoopReport> {
  const planned = o.epochs * run.nRows;
  const steps: TrainingStep[] = [];
  const evals: EvalRecord[] = [];
  let step = 0;
  let seconds = 0;
  const evaluate = () => {
    if (!run.evaluate) return;
    const e = run.evaluate();
    const rec: EvalRecord = { step, loss: e.loss, accuracy: e.accuracy, rows: e.rows };
    evals.push(rec);
    opts.onEval?.(rec);
  };
  evaluate();
  let stopped = false;
  let nextEval = o.evalEvery > 0 ? o.evalEvery : Infinity;
  outer: for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = epochOrder(run.nRows, epoch, o);
    for (let at = 0; at < order.length; ) {
      if (opts.signal?.aborted) {
        stopped = true;
        break outer;
      }
      // A chunk ends at the next evaluation, so evaluations fall exactly on multiples of evalEvery.
      const size = Math.min(o.chunkSize, order.length - at, nextEval - step);
      const t0 = performance.now();
      const chunk: TrainingStep[] = [];
      for (const row of order.slice(at, at + size)) {
        // The count of steps done so far (llama-opt.ts passes the 1-based step): kept, it is how the shipped models trained.
        const lr = cosineLr(step, planned, opts.lr, o.lrMin, o.warmupSteps);
        const m = run.step(row, lr);
        step++;
        chunk.push({ step, epoch, loss: m.loss, accuracy: m.accuracy, lr, tokens: step * run.tokensPerRow, elapsedSeconds: 0, tokensPerSecond: 0 });
      }
      at += size;
      // Validation time is excluded: the clock runs over training chunks only, spread evenly over a chunk's steps.
      const chunkSeconds = (performance.now() - t0) / 1000;
      chunk.forEach((s, i) => {
        s.elapsedSeconds = seconds + ((i + 1) / chunk.length) * chunkSeconds;
        s.tokensPerSecond = s.tokens / s.elapsedSeconds;
        steps.push(s);
        opts.onStep?.(s);
      });
      seconds += chunkSeconds;
      await new Promise((r) => setImmediate(r));
      if (opts.betweenChunks) await opts.betweenChunks(step);
      if (step >= nextEval) {
        nextEval += o.evalEvery;
        evaluate();
      }
    }
  }
  if (run.evaluate && evals[evals.length - 1]?.step !== step) evaluate();
  const last = steps[steps.length - 1];
  return {
    steps,
    evals,
    plannedSteps: planned,
    tokens: step * run.tokensPerRow,
    seconds: last?.elapsedSeconds ?? 0,
    tokensPerSecond: last?.tokensPerSecond ?? 0,
    stopped,
  };
}
