// The one place in agent/ that starts child processes. Everything the agent runs
// (compose, docker) goes through runCommand, so the environment a child sees is
// always the one the caller built explicitly: nothing is inherited by accident.

import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';

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
      env: opts.env,
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
