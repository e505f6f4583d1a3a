// The one place in agent/ that starts child processes. Everything the agent runs
// (compose, docker) goes through runCommand, so the environment a child sees is
// always the one the caller built explicitly: nothing is inherited by accident.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';

/**
 * Set in every child's environment (and so inherited by its own children: the compose
 * plugin under `docker compose`, a hook's commands). After `kill -9` of the agent alone
 * its children live on; the journal records this value, and the next start finds them
 * by it in /proc, whatever their PIDs or names, and waits for them before it recovers.
 */
export const AGENT_RUN_VARIABLE = 'FLOTILLA_AGENT_RUN';

let runId: string | undefined;

/** This process's mark: its PID and a random part, so a reused PID never matches. */
export function agentRunId(): string {
  runId ??= `${process.pid}-${randomBytes(8).toString('hex')}`;
  return runId;
}

export interface RunOptions {
  cwd?: string;
  /** The child's whole environment; process.env is NOT merged in. */
  env: Record<string, string>;
  /** Kill the child (SIGTERM, then SIGKILL after a grace period) when it runs longer. */
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** Keep at most this many bytes of each stream (the tail: errors come last). Default 1 MiB. */
  maxOutputBytes?: number;
}

export interface RunResult {
  /** Exit code; 128 + signal number when killed by a signal; 127 when the program could not start. */
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const KILL_GRACE_MS = 5_000;

/** A byte buffer that keeps only the last `cap` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.cap && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const excess = this.size - this.cap;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
      this.truncated = true;
    }
  }

  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.truncated ? `[output truncated]\n${body}` : body;
  }
}

export function runCommand(argv: string[], opts: RunOptions): Promise<RunResult> {
  const [program, ...args] = argv;
  if (!program) return Promise.reject(new TypeError('runCommand: empty argv'));
  const cap = opts.maxOutputBytes ?? 1024 * 1024;

  return new Promise((resolve) => {
    const stdout = new TailBuffer(cap);
    const stderr = new TailBuffer(cap);
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let graceTimer: NodeJS.Timeout | undefined;

    const child = spawn(program, args, {
      cwd: opts.cwd,
      env: { ...opts.env, [AGENT_RUN_VARIABLE]: agentRunId() },
      stdio: ['pipe', 'pipe', 'pipe'],
    });

    const finish = (result: RunResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(killTimer);
      clearTimeout(graceTimer);
      resolve(result);
    };

    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    // A child that exits without reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});

    child.on('error', (err: NodeJS.ErrnoException) => {
      finish({
        code: 127,
        stdout: stdout.text(),
        stderr: `${stderr.text()}${program}: ${err.code === 'ENOENT' ? 'command not found' : err.message}`,
        timedOut,
      });
    });

    child.on('close', (code, signal) => {
      const signalNumber = signal ? (osConstants.signals as Record<string, number>)[signal] ?? 0 : 0;
      finish({
        code: code ?? 128 + signalNumber,
        stdout: stdout.text(),
        stderr: stderr.text(),
        timedOut,
      });
    });

    if (opts.timeoutMs !== undefined) {
      killTimer = setTimeout(() => {
        timedOut = true;
        // Kill by the PID we started, never by name.
        try {
          if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
        } catch {
          // exited between the timer firing and the kill
        }
        graceTimer = setTimeout(() => {
          if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
            try {
              process.kill(child.pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
        }, KILL_GRACE_MS);
      }, opts.timeoutMs);
    }

    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export interface MarkedProcess {
  pid: number;
  /** The command line, for the log. */
  command: string;
}

/** Live processes (not this one) whose environment carries one of these agent-run marks. */
export async function processesOfRuns(runs: string[], proc = '/proc'): Promise<MarkedProcess[]> {
  // This process's own children are not leftovers: the agent that started them is alive.
  const others = runs.filter((r) => r !== agentRunId());
  if (others.length === 0) return [];
  const wanted = new Set(others.map((r) => `${AGENT_RUN_VARIABLE}=${r}`));
  const found: MarkedProcess[] = [];
  for (const name of await readdir(proc)) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    // Another user's process, or one that just exited: not ours to wait for.
    const environ = await readFile(`${proc}/${name}/environ`).catch(() => undefined);
    if (!environ || !environ.toString('utf8').split('\0').some((v) => wanted.has(v))) continue;
    const cmdline = await readFile(`${proc}/${name}/cmdline`, 'utf8').catch(() => '');
    // A zombie has an empty command line: already dead, its parent (init) reaps it.
    if (!cmdline) continue;
    found.push({ pid: Number(name), command: cmdline.split('\0').filter(Boolean).join(' ') });
  }
  return found;
}

export interface SettleOptions {
  /** How long the leftovers may run on before they are stopped. */
  waitMs: number;
  /** After SIGTERM, how long before SIGKILL. */
  graceMs?: number;
  pollMs?: number;
  log?: (line: string) => void;
}

/**
 * Waits for the processes a killed agent left running (found by its run marks) to end,
 * and stops them (SIGTERM, then SIGKILL, by PID) when they outlive `waitMs`. Returns
 * what was found, so the caller can say so.
 */
export async function settleLeftovers(runs: string[], opts: SettleOptions): Promise<MarkedProcess[]> {
  const first = await processesOfRuns(runs);
  if (first.length === 0) return first;
  const poll = opts.pollMs ?? 200;
  const list = (ps: MarkedProcess[]) => ps.map((p) => `${p.pid} (${p.command})`).join(', ');
  opts.log?.(`waiting for ${first.length} process(es) of the interrupted run: ${list(first)}`);
  const until = async (ms: number): Promise<MarkedProcess[]> => {
    const end = Date.now() + ms;
    let left = await processesOfRuns(runs);
    while (left.length > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, poll));
      left = await processesOfRuns(runs);
    }
    return left;
  };
  let left = await until(opts.waitMs);
  for (const [signal, wait] of [['SIGTERM', opts.graceMs ?? 10_000], ['SIGKILL', 5_000]] as const) {
    if (left.length === 0) break;
    opts.log?.(`stopping with ${signal}: ${list(left)}`);
    for (const p of left) {
      try {
        process.kill(p.pid, signal);
      } catch {
        // exited in between
      }
    }
    left = await until(wait);
  }
  if (left.length > 0) throw new Error(`processes of the interrupted run did not stop: ${list(left)}`);
  return first;
}
