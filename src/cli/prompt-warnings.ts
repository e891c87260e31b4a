/** What `--skip-long-prompts` tells the user about each problem it leaves out. */
import type { Problem } from '../tasks/problem.js';

export function skipWarning(problem: Problem, tokens: number, limit: number): void {
  process.stderr.write(`lynx: warning: skipping problem ${problem.id}: its prompt has ${tokens} tokens, more than ${limit}\n`);
}
