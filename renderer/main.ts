#!/usr/bin/env node
// The `flotilla` CLI. Each command lives in renderer/commands/<name>.ts and
// exports one register function; this file wires them up, and turns any error into a
// message and an exit code through core/exit.ts, as the agent's CLI does.
import { Command } from 'commander';
import { addGlobalOptions, readProcessStdin, type CliIo, type RegisterCommand } from './cli.js';
import { reportCliError } from './core/exit.js';
import { registerCheck } from './commands/check.js';
import { registerRender } from './commands/render.js';
import { registerPublish } from './commands/publish.js';
import { registerPlan } from './commands/plan.js';
import { registerComment } from './commands/comment.js';
import { registerBump } from './commands/bump.js';
import { registerStatus } from './commands/status.js';
import { registerPromote } from './commands/promote.js';
import { registerRollback } from './commands/rollback.js';
import { registerSecret } from './commands/secret.js';
import { registerInit } from './commands/init.js';
import { isEntryPoint } from './core/entry-point.js';

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
  registerSecret,
  registerInit,
];

export function buildProgram(io: CliIo): Command {
  const program = addGlobalOptions(
    new Command('flotilla').description('Render per-tenant Docker Compose trees from fleet/ and templates/ and publish them as git branches'),
  )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError();
  for (const register of COMMANDS) register(program, io);
  return program;
}

/** Runs the CLI with `argv` (arguments only, without node and script) and returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    return reportCliError('flotilla', error, io.stderr);
  }
}

if (isEntryPoint(import.meta.url)) {
  const io: CliIo = {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    cwd: process.cwd(),
    env: process.env,
    readStdin: () => readProcessStdin(),
  };
  process.exitCode = await runCli(process.argv.slice(2), io);
}
