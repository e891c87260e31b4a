import type { Command } from 'commander';
import { registerGenerate } from './generate.js';

/** Every subcommand, in the order `lynx --help` lists them. */
export function registerCommands(program: Command): void {
  registerGenerate(program);
}
