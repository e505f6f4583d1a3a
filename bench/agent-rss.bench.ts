// Idle RSS of the real agent daemon, started as its systemd unit starts it (`node
// <DAEMON_NODE_FLAGS> dist/agent/main.js run`), beside a bare
// `node` process that only keeps a timer, both read from /proc/<pid>/status in the
// same run. The agent polls a loopback git server whose repo has no branch for its
// tenant, so its first pass loads the git client, does one ls-refs, logs
// "does not exist yet" and goes idle: what a host between polls looks like.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DAEMON_NODE_FLAGS } from '../agent/daemon-node-flags.js';
import { startGitServer } from '../test/support/git-server.js';
import { benchRow, type BenchRow } from './bench-row.js';

const TARGET_MB = 80;
/** How long a process sits idle after its start (or first pass) before its RSS is read. */
const SETTLE_MS = 3000;
const READY_TIMEOUT_MS = 20_000;

/** VmRSS of a live process, in kB (Linux). */
export async function residentKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Stops a child by its PID and waits for it to exit (SIGKILL if SIGTERM is ignored). */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, 'SIGTERM');
  const timer = setTimeout(() => child.pid && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts `node args`, waits until its output matches `ready` (or at once when
 * undefined), lets it sit for SETTLE_MS, reads its RSS, stops it.
 */
async function idleRssKb(args: string[], env: NodeJS.ProcessEnv, ready?: RegExp): Promise<{ kb: number; output: string }> {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready after ${READY_TIMEOUT_MS} ms; output:\n${output}`)), READY_TIMEOUT_MS);
      const check = () => {
        if (!ready || ready.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        check();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`exited early (${code ?? signal}); output:\n${output}`));
      });
      child.once('spawn', check);
      child.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return { kb: await residentKb(child.pid!), output };
  } finally {
    await stopChild(child);
  }
}

function agentEntry(): string {
  // dist/bench/agent-rss.bench.js -> dist/agent/main.js (the benchmark always runs built).
  const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} not found: run \`npm run build\` first`);
  return main;
}

export async function benchAgentIdleRss(): Promise<BenchRow[]> {
  const main = agentEntry();
  const tmp = await mkdtemp(join(tmpdir(), 'flotilla-bench-rss-'));
  const server = await startGitServer({ root: join(tmp, 'repos') });
  try {
    await server.createBareRepo('fleet.git');
    const installDir = join(tmp, 'install');
    const stateDir = join(tmp, 'state');
    await mkdir(installDir);
    await mkdir(stateDir);
    const envFile = join(tmp, 'agent.env');
    await writeFile(
      envFile,
      [
        `FLOTILLA_REPO=${server.url('fleet.git')}`,
        'FLOTILLA_TENANT=bench',
        `FLOTILLA_DIR=${installDir}`,
        `FLOTILLA_STATE_DIR=${stateDir}`,
        'FLOTILLA_SCHEDULE=* * * * *',
        'FLOTILLA_COMPOSE=docker-compose',
        '',
      ].join('\n'),
    );
    // Only what a service unit would give it; none of this process's variables.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp };
    const agent = await idleRssKb([...DAEMON_NODE_FLAGS, main, 'run', '--settings', envFile], env, /does not exist yet/);
    const bare = await idleRssKb(['-e', 'setInterval(() => {}, 1000)'], env);
    const agentMb = agent.kb / 1024;
    const bareMb = bare.kb / 1024;
    return [
      benchRow({
        name: `agent idle RSS (daemon after its first poll; node ${DAEMON_NODE_FLAGS.join(' ')})`,
        unit: 'MB',
        value: Math.round(agentMb * 10) / 10,
        baseline: Math.round(bareMb * 10) / 10,
        ratio: Math.round((agentMb / bareMb) * 100) / 100,
        target: `< ${TARGET_MB} MB`,
        met: agentMb < TARGET_MB,
      }),
    ];
  } finally {
    await server.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
