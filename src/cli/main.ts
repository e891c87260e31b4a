#!/usr/bin/env node
/**
 * The `lynx` command. Each subcommand lives in its own file under commands/ and registers itself on the program.
 */
import { Command, CommanderError } from 'commander';
import { LynxError } from '../util/errors.js';
import { registerCommands } from './commands/index.js';
import { readPackageVersion } from './version.js';
import { staleBuildWarning } from './stale-build.js';
import { packageRoot } from '../util/paths.js';

export function buildProgram(): Command {
  const program = new Command('lynx')
    .description('Confidence-controlled early exit for reasoning models (LYNX) on llama.cpp')
    .version(readPackageVersion())
    .showHelpAfterError()
    // `lynx demo train --seed 3`: options after a subcommand belong to it, not to its parent.
    .enablePositionalOptions()
    .exitOverride();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof LynxError) {
      process.stderr.write(`lynx: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

// Run when executed directly (bin or `node dist/cli/main.js`), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/[\\/](main\.(js|ts)|lynx)$/.test(invoked)) {
  if (!invoked.endsWith('.ts')) {
    const stale = staleBuildWarning(packageRoot());
    if (stale) process.stderr.write(`lynx: warning: ${stale}\n`);
  }
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`lynx: internal error: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
