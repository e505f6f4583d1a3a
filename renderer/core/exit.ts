// Where an error becomes a message and an exit code, for both CLIs (`flotilla` and
// `flotilla-agent`): each main.ts calls this once, so a kind of error exits the same
// way from either program.
import { CommanderError } from 'commander';
import { FlotillaError } from './errors.js';

/** Exit code for an error Flotilla did not expect: EX_SOFTWARE, an internal bug. */
export const EXIT_INTERNAL = 70;

/**
 * Writes what the user needs to stderr and returns the exit code. `redact` hides host
 * values (the agent's secrets) in anything printed, the stack of a bug included.
 */
export function reportCliError(
  program: string,
  error: unknown,
  stderr: (text: string) => void,
  redact: (text: string) => string = (text) => text,
): number {
  if (error instanceof CommanderError) return error.exitCode; // commander printed its own message
  if (error instanceof FlotillaError) {
    stderr(`${program}: ${redact(error.message)}\n`);
    return error.exitCode;
  }
  const trace = error instanceof Error ? (error.stack ?? error.message) : String(error);
  stderr(redact(`${program}: internal error (a bug in ${program}; please report it with this trace)\n${trace}\n`));
  return EXIT_INTERNAL;
}
