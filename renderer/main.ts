#!/usr/bin/env node
// The `flotilla` CLI. Each command lives in renderer/commands/<name>.ts and
// exports one register function; this file wires them up and owns the only place
// where an error becomes a message and an exit code.
import { Command, CommanderError } from 'commander';
import { FlotillaError } from './core/errors.js';
import { registerCheck } from './commands/check.js';
import { registerRender } from './commands/render.js';
import { registerPublish } from './commands/publish.js';
import { registerPlan } from './commands/plan.js';
import { registerComment } from './commands/comment.js';
import { registerBump } from './commands/bump.js';
import { registerStatus } from './commands/status.js';
import { registerPromote } from './commands/promote.js';
import { registerRollback } from './commands/rollback.js';
import { isEntryPoint } from './core/entry-point.js';

/** Where a command writes; tests pass buffers, the real CLI passes the process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Directory relative paths (`--root`, `--out`) are resolved against. */
  cwd: string;
  env: Record<string, string | undefined>;
}

/** Adds one command to the program; its action throws a FlotillaError to fail. */
export type RegisterCommand = (program: Command, io: CliIo) => void;

/** Options every command sees through `program.opts()`. */
export interface GlobalOptions {
  root: string;
}

// Add a command: write renderer/commands/<name>.ts exporting register<Name>, list it here.
const COMMANDS: RegisterCommand[] = [
  registerCheck,
  registerRender,
  registerPublish,
  registerPlan,
  registerComment,
  registerBump,
  registerStatus,
  registerPromote,
  registerRollback,
];

/** Exit code for an error Flotilla did not expect: EX_SOFTWARE, an internal bug. */
export const EXIT_INTERNAL = 70;

export function buildProgram(io: CliIo): Command {
  const program = new Command('flotilla')
    .description('Render per-tenant Docker Compose trees from fleet/ and templates/ and publish them as git branches')
    .option('--root <dir>', 'repository root holding fleet/ and templates/', '.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError();
  for (const register of COMMANDS) register(program, io);
  return program;
}

/** Turns any thrown value into a message on stderr and an exit code. */
export function reportError(error: unknown, io: Pick<CliIo, 'stderr'>): number {
  if (error instanceof CommanderError) return error.exitCode; // commander printed its own message
  if (error instanceof FlotillaError) {
    io.stderr(`flotilla: ${error.message}\n`);
    return error.exitCode;
  }
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  io.stderr(`flotilla: internal error (a bug in flotilla; please report it with this trace)\n${stack}\n`);
  return EXIT_INTERNAL;
}

/** Runs the CLI with `argv` (arguments only, without node and script) and returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return reportError(error, io);
  }
}

if (isEntryPoint(import.meta.url)) {
  const io: CliIo = {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    cwd: process.cwd(),
    env: process.env,
  };
  process.exitCode = await runCli(process.argv.slice(2), io);
}
