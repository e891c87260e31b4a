#!/usr/bin/env node
/**
 * The `lynx` command. Each subcommand lives in its own file under commands/ and registers itself on the program.
 *
 * Errors: a LynxError (something the user can fix) prints one line, `lynx: <message>`, and exits with 1, or 2 for a
 * usage error (a bad option value; commander's own errors too); a file-system error (permission denied, disk full, a
 * path under a file) is reported the same way. `LYNX_DEBUG=1` adds the stack. Anything else is a bug: "internal error"
 * and the stack.
 */
import { Command, CommanderError } from 'commander';
import { LynxEngineUsageError } from '../engine/errors.js';
import { LynxError, UsageError } from '../util/errors.js';
import { registerCommands } from './commands/index.js';
import { readPackageVersion } from './version.js';
import { staleBuildWarning } from './stale-build.js';
import { packageRoot } from '../util/paths.js';

/** Exit codes of `lynx`. */
export const EXIT = { ok: 0, error: 1, usage: 2, sigint: 130, sigterm: 143 } as const;

export function buildProgram(): Command {
  const program = new Command('lynx')
    .description('Confidence-controlled early exit for reasoning models (LYNX) on llama.cpp')
    .version(readPackageVersion())
    // One line per error, as for every other error of the command; the help is one flag away.
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (str, write) => write(`lynx: ${str.replace(/^error: /, '')}`) })
    // `lynx demo train --seed 3`: options after a subcommand belong to it, not to its parent.
    .enablePositionalOptions()
    .exitOverride();
  registerCommands(program);
  return program;
}

/** Error codes of Node's file system calls that the user causes (and can fix): reported in one line, not as a bug. */
const FILE_SYSTEM_CODES = new Set(['ENOENT', 'EACCES', 'EPERM', 'ENOSPC', 'EDQUOT', 'ENOTDIR', 'EISDIR', 'EROFS', 'EEXIST', 'EMFILE', 'ENFILE', 'ENAMETOOLONG', 'ELOOP', 'EFBIG', 'EIO']);

/** A Node file-system error (it has a `code` such as EACCES and a `syscall`). */
export function isFileSystemError(e: unknown): e is NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException;
  return e instanceof Error && typeof err.code === 'string' && FILE_SYSTEM_CODES.has(err.code) && typeof err.syscall === 'string';
}

/** The exit code and one-line message for an error the user can act on; null for a bug. */
export function describeError(e: unknown): { code: number; message: string } | null {
  if (e instanceof UsageError || e instanceof LynxEngineUsageError) return { code: EXIT.usage, message: e.message };
  if (e instanceof LynxError) return { code: EXIT.error, message: e.message };
  if (isFileSystemError(e)) {
    const what = FILE_SYSTEM_HINTS[e.code!] ?? '';
    return { code: EXIT.error, message: `${e.message}${what ? ` (${what})` : ''}` };
  }
  return null;
}

const FILE_SYSTEM_HINTS: Record<string, string> = {
  ENOSPC: 'the disk is full: free space and run the same command again; finished work is kept',
  EDQUOT: 'the disk quota is used up: free space and run the same command again',
  EACCES: 'no permission: choose a folder you can write to',
  EPERM: 'not permitted: choose a folder you can write to',
  EROFS: 'the file system is read-only: choose another folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'the path is a folder, not a file',
};

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const known = describeError(e);
    if (!known) throw e;
    // One line: a message spanning lines (llama.cpp's log) is joined, so scripts can grep it.
    process.stderr.write(`lynx: ${known.message.replace(/\s*\n\s*/g, '; ')}\n`);
    if (process.env.LYNX_DEBUG === '1' && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    return known.code;
  }
}

// Run when executed directly (bin or `node dist/cli/main.js`), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/[\\/](main\.(js|ts)|lynx)$/.test(invoked)) {
  if (!invoked.endsWith('.ts')) {
    const stale = staleBuildWarning(packageRoot());
    if (stale) process.stderr.write(`lynx: warning: ${stale}\n`);
  }
  // Ctrl-C and `kill` end every command promptly with the conventional codes (a decode running on a worker thread
  // does not hold the exit: the engine ends the process at once then). A command with its own handler (build-dataset
  // saves finished work, serve closes its port) is left to it.
  const onSignal = (signal: NodeJS.Signals) => {
    if (process.listenerCount(signal) > 1) return;
    process.stderr.write(`\nlynx: interrupted (${signal})\n`);
    process.exit(signal === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`lynx: internal error: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
