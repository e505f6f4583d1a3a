// Hooks: commands the fleet config declares around an apply, because swapping files
// cannot undo a database migration. Pre-swap hooks run in the current stack (a dump
// of the data before the change); post-up hooks run in the new, healthy one
// (migrations, a smoke check). They run with compose's minimal environment, never
// the agent's own (its tokens above all), and every run leaves a log file in the
// state dir beside the journal:
//
//   <stateDir>/hooks/<name>/runs/<time>-<phase>.log   argv, exit, stdout, stderr (last HOOK_RUN_LOGS_KEPT)
//   <stateDir>/hooks/<name>/output/                    successful runs' files (newest `keep`)
//   <stateDir>/hooks/<name>/incoming/                  FLOTILLA_HOOK_OUTPUT_DIR while a run is going
//   <stateDir>/hooks/bin/compose                       `compose` for shell hooks: the host's compose command
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { HookFailedError } from '../renderer/core/errors.js';
import type { HookCommand } from '../renderer/core/manifest.js';
import { composeEnv } from './compose.js';
import { runCommand, type RunResult } from './exec.js';

export type HookPhase = 'preSwap' | 'postUp';
export const HOOK_PHASE_LABELS: Record<HookPhase, 'pre-swap' | 'post-up'> = { preSwap: 'pre-swap', postUp: 'post-up' };
export const DEFAULT_HOOK_TIMEOUT_SECONDS = 600;
/** Files a hook's output folder keeps when the hook does not say. */
export const DEFAULT_HOOK_KEEP = 10;
export const HOOK_RUN_LOGS_KEPT = 20;
/** Per stream, in a run log: a hook that prints a dump to stdout keeps only the tail. */
const RUN_LOG_OUTPUT_BYTES = 256 * 1024;

export interface HookRunOptions {
  stateDir: string;
  /** The install dir: the old stack before the swap, the new one after `up`. */
  dir: string;
  project: string;
  /** The host's compose command, e.g. ['docker-compose'] or ['docker', 'compose']. */
  composeCommand: () => Promise<string[]>;
  /** Where the allow-listed variables come from (as for compose); nothing else passes. */
  env: Record<string, string | undefined>;
  log: (line: string) => void;
  /** Hides host values (HostSecrets.redact) in run logs and failure details, before any cut. */
  redact?: (text: string) => string;
  now?: () => Date;
}

export interface HookRun {
  name: string;
  phase: HookPhase;
  code: number;
  logFile: string;
}

export function hooksDir(stateDir: string): string {
  return join(stateDir, 'hooks');
}

/** Where a hook's files (dumps) are kept: only those of successful runs, rotated to its `keep`. */
export function hookOutputDir(stateDir: string, name: string): string {
  return join(hooksDir(stateDir), name, 'output');
}

/**
 * FLOTILLA_HOOK_OUTPUT_DIR while a run is going. A run writes here, never into the
 * output folder itself: a failed dump is partial, and had it landed among the good
 * ones it would count toward `keep` and rotate out the last good dump, which is the
 * one needed when the database is in trouble. Moved into the output folder on
 * success, removed on failure (and at the next run, after a crash).
 */
export function hookIncomingDir(stateDir: string, name: string): string {
  return join(hooksDir(stateDir), name, 'incoming');
}

export function hookRunsDir(stateDir: string, name: string): string {
  return join(hooksDir(stateDir), name, 'runs');
}

/** `compose` in a hook's argv stands for the host's compose command. */
export function hookArgv(run: string[], composeCommand: string[]): string[] {
  return run[0] === 'compose' ? [...composeCommand, ...run.slice(1)] : [...run];
}

/**
 * The whole environment of a hook: compose's allow-list (PATH, HOME, DOCKER_HOST...),
 * the project name so `compose` finds the stack, and where to write output. The shim
 * folder goes first on PATH so `compose` works inside `sh -c` as well.
 */
export function hookEnv(
  source: Record<string, string | undefined>,
  hook: { name: string; phase: HookPhase; project: string; outputDir: string; binDir: string },
): Record<string, string> {
  const env = composeEnv(source);
  env.PATH = `${hook.binDir}:${env.PATH}`;
  env.COMPOSE_PROJECT_NAME = hook.project;
  env.FLOTILLA_HOOK_NAME = hook.name;
  env.FLOTILLA_HOOK_PHASE = HOOK_PHASE_LABELS[hook.phase];
  env.FLOTILLA_HOOK_OUTPUT_DIR = hook.outputDir;
  return env;
}

const shellQuote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

/** Writes `<stateDir>/hooks/bin/compose` (exec the host's compose command) when it differs. */
async function writeComposeShim(binDir: string, composeCommand: string[]): Promise<void> {
  const path = join(binDir, 'compose');
  const text = `#!/bin/sh\n# Written by flotilla-agent: the host's compose command, for hooks.\nexec ${composeCommand.map(shellQuote).join(' ')} "$@"\n`;
  if ((await readFile(path, 'utf8').catch(() => undefined)) === text) return;
  await mkdir(binDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, text, { mode: 0o755 });
}

/** Keeps the `keep` newest files of `dir` (by modification time, then name); removes the rest. */
export async function rotateFiles(dir: string, keep: number): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const files: Array<{ name: string; mtimeMs: number }> = [];
  for (const name of names) {
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) files.push({ name, mtimeMs: st.mtimeMs });
  }
  files.sort((a, b) => b.mtimeMs - a.mtimeMs || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const removed = files.slice(keep).map((f) => f.name);
  for (const name of removed) await rm(join(dir, name), { force: true });
  return removed;
}

/** Moves what a successful run wrote into the output folder (a same-named older file is replaced). */
async function keepRunOutput(incoming: string, outputDir: string): Promise<void> {
  for (const name of await readdir(incoming)) {
    const target = join(outputDir, name);
    const [from, to] = await Promise.all([lstat(join(incoming, name)), lstat(target).catch(() => undefined)]);
    // rename() replaces a file but not a non-empty folder; a folder a run rewrote is taken whole.
    if (to && (to.isDirectory() || from.isDirectory())) await rm(target, { recursive: true, force: true });
    await rename(join(incoming, name), target);
  }
  await rm(incoming, { recursive: true, force: true });
}

function lastLine(text: string): string | undefined {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && l !== '[output truncated]');
  return lines[lines.length - 1];
}

/** What a status says about a failed run: its last output line (stderr first), else its exit. */
export function hookFailureDetail(result: RunResult, timeoutSeconds: number, redact: (text: string) => string = (t) => t): string {
  // Redacted before the 80-character cut: a cut value would otherwise leave as a prefix too short to recognise.
  const said = lastLine(redact(result.stderr)) ?? lastLine(redact(result.stdout));
  const clipped = said && said.length > 80 ? `${said.slice(0, 77)}...` : said;
  if (result.timedOut) return `timed out after ${timeoutSeconds} s${clipped ? `: ${clipped}` : ''}`;
  return clipped ?? `exit code ${result.code}`;
}

function runLogText(hook: HookCommand, phase: HookPhase, argv: string[], dir: string, started: Date, ms: number, result: RunResult): string {
  return [
    `hook: ${hook.name} (${HOOK_PHASE_LABELS[phase]})`,
    `run: ${JSON.stringify(argv)}`,
    `cwd: ${dir}`,
    `started: ${started.toISOString()}`,
    `exit: ${result.code}${result.timedOut ? ' (timed out)' : ''} after ${(ms / 1000).toFixed(1)} s`,
    '--- stdout ---',
    result.stdout.trimEnd(),
    '--- stderr ---',
    result.stderr.trimEnd(),
    '',
  ].join('\n');
}

/**
 * Runs the hooks of one phase in order and stops at the first failure, throwing
 * HookFailedError (phase, name, last output line, log file). Every run, failed or
 * not, leaves its log; a successful run's files join its output folder, which is then
 * rotated; a failed run's files are removed.
 */
export async function runHooks(phase: HookPhase, hooks: HookCommand[], opts: HookRunOptions): Promise<HookRun[]> {
  const now = opts.now ?? (() => new Date());
  const binDir = join(hooksDir(opts.stateDir), 'bin');
  const compose = await opts.composeCommand();
  await writeComposeShim(binDir, compose);
  const runs: HookRun[] = [];
  for (const hook of hooks) {
    const outputDir = hookOutputDir(opts.stateDir, hook.name);
    const incoming = hookIncomingDir(opts.stateDir, hook.name);
    const runsDir = hookRunsDir(opts.stateDir, hook.name);
    await mkdir(outputDir, { recursive: true, mode: 0o700 });
    await mkdir(runsDir, { recursive: true, mode: 0o700 });
    // Left by a run the agent did not see finish (a crash): never a good dump.
    await rm(incoming, { recursive: true, force: true });
    await mkdir(incoming, { mode: 0o700 });
    const argv = hookArgv(hook.run, compose);
    const timeoutSeconds = hook.timeoutSeconds ?? DEFAULT_HOOK_TIMEOUT_SECONDS;
    const started = now();
    const t0 = performance.now();
    opts.log(`${HOOK_PHASE_LABELS[phase]} hook ${hook.name}: running`);
    const result = await runCommand(argv, {
      cwd: opts.dir,
      env: hookEnv(opts.env, { name: hook.name, phase, project: opts.project, outputDir: incoming, binDir }),
      timeoutMs: timeoutSeconds * 1000,
      maxOutputBytes: RUN_LOG_OUTPUT_BYTES,
    });
    const ms = performance.now() - t0;
    const logFile = join(runsDir, `${started.toISOString().replace(/[-:]/g, '')}-${HOOK_PHASE_LABELS[phase]}.log`);
    const redact = opts.redact ?? ((text: string) => text);
    await writeFile(logFile, redact(runLogText(hook, phase, argv, opts.dir, started, ms, result)), { mode: 0o600 });
    await rotateFiles(runsDir, HOOK_RUN_LOGS_KEPT);
    runs.push({ name: hook.name, phase, code: result.code, logFile });
    // The hook's output stays in its log file: it may hold data the agent log must not.
    if (result.code !== 0) {
      const partial = (await readdir(incoming).catch(() => [] as string[])).length;
      await rm(incoming, { recursive: true, force: true });
      const detail = hookFailureDetail(result, timeoutSeconds, redact);
      opts.log(
        `${HOOK_PHASE_LABELS[phase]} hook ${hook.name}: failed (exit ${result.code}); output in ${logFile}${partial ? `; removed the ${partial} file(s) it wrote, the kept ones untouched` : ''}`,
      );
      throw new HookFailedError(HOOK_PHASE_LABELS[phase], hook.name, detail, logFile);
    }
    // Only now does the run count toward `keep`: a failure above never rotated a good file out.
    await keepRunOutput(incoming, outputDir);
    const removed = await rotateFiles(outputDir, hook.keep ?? DEFAULT_HOOK_KEEP);
    if (removed.length > 0) opts.log(`${HOOK_PHASE_LABELS[phase]} hook ${hook.name}: rotated out ${removed.join(', ')}`);
    const kept = (await readdir(outputDir)).length;
    opts.log(`${HOOK_PHASE_LABELS[phase]} hook ${hook.name}: ok in ${(ms / 1000).toFixed(1)} s${kept ? `; ${kept} file(s) in ${outputDir}` : ''}`);
  }
  return runs;
}

