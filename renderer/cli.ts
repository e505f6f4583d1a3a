// What every `flotilla` command shares: where it writes, the global options, and how it
// finds the fleet checkout. Commands import this, never main.ts, so main.ts can import
// every command without a cycle.
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { SettingError } from './core/errors.js';

/** Where a command writes; tests pass buffers, the real CLI passes the process streams. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Directory relative paths (`--fleet-dir`, `--out`) are resolved against. */
  cwd: string;
  env: Record<string, string | undefined>;
  /**
   * Reads all of standard input (`flotilla secret set` takes the value from it, never from
   * argv). Absent: the command has no standard input. Throws when stdin is a terminal.
   */
  readStdin?: () => Promise<string>;
}

/** Largest standard input `readProcessStdin` reads: a secret value, not a file. */
export const MAX_STDIN_BYTES = 64 * 1024;

/**
 * The real CLI's CliIo.readStdin: all of process.stdin as UTF-8, refused when it is a
 * terminal (a value typed there is echoed and lands in scrollback) or over MAX_STDIN_BYTES.
 */
export async function readProcessStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (stdin.isTTY)
    throw new SettingError('stdin', 'is a terminal; pipe the value in, e.g. `printf %s "$VALUE" | flotilla secret set TENANT KEY` or `flotilla secret set TENANT KEY < file`');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN_BYTES) throw new SettingError('stdin', `holds more than ${MAX_STDIN_BYTES} bytes: a secret value is one .env line`);
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
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

export interface PlanCliOptions {
  base?: string;
  head?: string;
  format: 'markdown' | 'json';
  out?: string;
  registryCheck: boolean;
}

/** Adds --base/--head/--no-registry-check, shared by `plan` and `comment`. */
export function addPlanOptions(command: Command, baseRequired: boolean): Command {
  const base = new Option('--base <ref>', 'ref the change is compared against (e.g. origin/main or a commit id)');
  if (baseRequired) base.makeOptionMandatory();
  return command
    .addOption(base)
    .option('--head <ref>', 'ref holding the change (default: the working tree)')
    .option('--no-registry-check', 'do not ask the registry whether moved image tags exist');
}

/**
 * Writes a command's output file (`--out`, `--html`), relative to the working directory.
 * A path that cannot be written is the user's to fix, so it fails naming the flag and
 * the path rather than as an internal error.
 */
export async function writeOutputFile(io: Pick<CliIo, 'cwd'>, flag: string, path: string, text: string): Promise<void> {
  const file = resolve(io.cwd, path);
  try {
    await writeFile(file, text);
  } catch (e) {
    throw new SettingError(flag, `cannot write ${file}: ${fileProblem(e, 'its folder does not exist')}`, { cause: e });
  }
}

/** Reads a file a flag names (`--file`), failing with the flag and the path when it cannot. */
export async function readInputFile(io: Pick<CliIo, 'cwd'>, flag: string, path: string): Promise<string> {
  const file = resolve(io.cwd, path);
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new SettingError(flag, `cannot read ${file}: ${fileProblem(e, 'no such file')}`, { cause: e });
  }
}

function fileProblem(e: unknown, missing: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return missing;
  if (code === 'ENOTDIR') return 'a part of the path is a file, not a folder';
  if (code === 'EISDIR') return 'it is a folder';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return (e as Error).message;
}
