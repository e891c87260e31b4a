/**
 * The options every command that generates answers shares about how they are counted and forced: `--exit-accounting`
 * (where a forced exit stops decoding) and `--budget-forcing` (a forced answer at the token budget), each the same for
 * every method.
 */
import type { Command } from 'commander';
import { checkExitAccounting, type ExitAccounting } from '../reasoning/forced-exit.js';
import { UsageError, asUsage } from '../util/errors.js';

export function accountingOptions(command: Command, budgetDefault: string): Command {
  return command
    .option('--exit-accounting <a>', "box: forced exits stop where the answer's box closes (default); lynx: they decode to end of sequence or the answer budget, as LYNX's scripts count")
    .option('--budget-forcing <on|off>', `a trace out of tokens while thinking gets a forced answer (on) or is graded as truncated (off, as LYNX's scripts) (default: ${budgetDefault})`);
}

export function exitAccountingOf(v: string | undefined): ExitAccounting | undefined {
  return v === undefined ? undefined : asUsage(() => checkExitAccounting(v));
}

export function budgetForcingOf(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new UsageError(`--budget-forcing must be on or off (got '${v}')`);
}
