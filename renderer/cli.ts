// What every `flotilla` command shares: where it writes, the global options, and how it
// finds the fleet checkout. Commands import this, never main.ts, so main.ts can import
// every command without a cycle.
import { resolve } from 'node:path';
import type { Command } from 'commander';

/** Where a command writes; tests pass buffers, the real CLI passes the process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Directory relative paths (`--fleet-dir`, `--out`) are resolved against. */
  cwd: string;
  env: Record<string, string | undefined>;
}

/** Adds one command to the program; its action throws a FlotillaError to fail. */
export type RegisterCommand = (program: Command, io: CliIo) => void;

/** Options every command sees through `program.opts()`. */
export interface GlobalOptions {
  /** `--fleet-dir`: the checkout holding fleet/ and templates/. */
  fleetDir?: string;
  /** `--root`, the older name of `--fleet-dir`. */
  root?: string;
}

/** Adds the options every command takes to the program. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option('--fleet-dir <dir>', 'the fleet repository checkout holding fleet/ and templates/ (default: the current directory)')
    .option('--root <dir>', 'the same as --fleet-dir (older name)');
}

/** The absolute fleet checkout a command works on: `--fleet-dir`, else `--root`, else the current directory. */
export function fleetRoot(program: Command, io: Pick<CliIo, 'cwd'>): string {
  const opts = program.opts<GlobalOptions>();
  return resolve(io.cwd, opts.fleetDir ?? opts.root ?? '.');
}
