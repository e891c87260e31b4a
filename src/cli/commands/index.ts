import type { Command } from 'commander';
import { registerGenerate } from './generate.js';
import { registerRun } from './run.js';
import { registerEval } from './eval.js';
import { registerBuildDataset } from './build-dataset.js';
import { registerMerge } from './merge.js';
import { registerTrainProbe } from './train-probe.js';
import { registerCalibrate } from './calibrate.js';
import { registerSimulate } from './simulate.js';
import { registerDeerRollouts } from './deer-rollouts.js';
import { registerData } from './data.js';
import { registerConvert } from './convert.js';
import { registerReport } from './report.js';
import { registerDemo } from './demo.js';
import { registerServe } from './serve.js';
import { registerHeads } from './heads.js';

/** Every subcommand, in the order `lynx --help` lists them. */
export function registerCommands(program: Command): void {
  registerDemo(program);
  registerGenerate(program);
  registerRun(program);
  registerServe(program);
  registerEval(program);
  registerBuildDataset(program);
  registerMerge(program);
  registerTrainProbe(program);
  registerCalibrate(program);
  registerHeads(program);
  registerSimulate(program);
  registerDeerRollouts(program);
  registerData(program);
  registerConvert(program);
  registerReport(program);
}
