// A private Docker engine for tests and the demo: its own data root, exec root,
// socket and pidfile, no bridge, no iptables. It only ever starts inside a network
// namespace of its own (scripts/test.sh creates one), because `--bridge=none`
// deletes any docker0 in its namespace and container addresses must stay off the
// shared network.

import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface DockerEngine {
  /** `unix://...` socket: set DOCKER_HOST to this. */
  host: string;
  /** A DOCKER_CONFIG folder of its own, so tests never read or write ~/.docker. */
  dockerConfig: string;
  pid: number;
  /** Folder holding data root, exec root, pidfile, socket and log. */
  root: string;
  logFile: string;
}

export interface NetworkIsolation {
  isolated: boolean;
  reason: string;
}

/**
 * Whether this process has a network namespace of its own. Compares with PID 1's
 * namespace when readable; where it is not (some VMs deny it even to root), a
 * namespace whose only interface is `lo` can hold nothing shared.
 */
export async function networkIsolation(): Promise<NetworkIsolation> {
  const self = await readlink('/proc/self/ns/net');
  try {
    const init = await readlink('/proc/1/ns/net');
    return init === self
      ? { isolated: false, reason: `this process shares PID 1's network namespace (${self})` }
      : { isolated: true, reason: `network namespace ${self} differs from PID 1's ${init}` };
  } catch {
    const interfaces = await networkInterfaces();
    const others = interfaces.filter((name) => name !== 'lo');
    return others.length === 0
      ? { isolated: true, reason: `network namespace ${self} has only a loopback interface` }
      : {
          isolated: false,
          reason: `network namespace ${self} has interfaces ${others.join(', ')} (PID 1's namespace is unreadable)`,
        };
  }
}

async function networkInterfaces(): Promise<string[]> {
  // /proc/self/net/dev is the reader's namespace (unlike /sys/class/net).
  const text = await readFile('/proc/self/net/dev', 'utf8');
  return text
    .split('\n')
    .slice(2)
    .map((line) => line.split(':')[0]!.trim())
    .filter((name) => name.length > 0);
}

export interface StartEngineOptions {
  /** Parent folder for the engine's roots; default FLOTILLA_TEST_RUN_DIR or the OS temp dir. */
  parentDir?: string;
  dockerd?: string;
  readyTimeoutMs?: number;
}

export async function startDockerEngine(opts: StartEngineOptions = {}): Promise<DockerEngine> {
  const isolation = await networkIsolation();
  if (!isolation.isolated) {
    throw new Error(
      `refusing to start dockerd: ${isolation.reason}. ` +
        'Run the Docker tests through `npm test` (scripts/test.sh), which creates a private network namespace.',
    );
  }
  const parent = opts.parentDir ?? process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir();
  await mkdir(parent, { recursive: true });
  // Short paths: the socket and containerd's socket live below this and unix socket paths cap at 108 bytes.
  const root = await mkdtemp(join(parent, 'd-'));
  const dataRoot = join(root, 'data');
  const execRoot = join(root, 'exec');
  const pidFile = join(root, 'dockerd.pid');
  const socket = join(root, 'docker.sock');
  const logFile = join(root, 'dockerd.log');
  const dockerConfig = join(root, 'config');
  await mkdir(dockerConfig);
  await writeFile(join(dockerConfig, 'config.json'), '{}\n');

  const log = openSync(logFile, 'a');
  const child = spawn(
    opts.dockerd ?? 'dockerd',
    [
      '--storage-driver=vfs',
      `--data-root=${dataRoot}`,
      `--exec-root=${execRoot}`,
      `--pidfile=${pidFile}`,
      `--host=unix://${socket}`,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-forward=false',
      '--ip-masq=false',
    ],
    { stdio: ['ignore', log, log], detached: true },
  );
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('dockerd could not be started (is docker.io installed?)');

  const engine: DockerEngine = { host: `unix://${socket}`, dockerConfig, pid, root, logFile };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = await logTail(logFile);
      await removeEngineRoot(root);
      throw new Error(`dockerd exited during start (code ${child.exitCode ?? child.signalCode}):\n${tail}`);
    }
    if (await engineAnswers(engine)) return engine;
    if (Date.now() > deadline) {
      const tail = await logTail(logFile);
      await stopDockerEngine(engine);
      throw new Error(`dockerd did not answer on ${socket} in time:\n${tail}`);
    }
    await sleep(100);
  }
}

async function engineAnswers(engine: DockerEngine): Promise<boolean> {
  try {
    await execFileAsync('docker', ['version', '--format', '{{.Server.Version}}'], {
      env: dockerEnv(engine),
      timeout: 10_000,
    });
    return true;
  } catch {
    return false;
  }
}

/** The environment the docker CLI needs to talk to this engine and nothing else. */
export function dockerEnv(engine: Pick<DockerEngine, 'host' | 'dockerConfig'>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    DOCKER_HOST: engine.host,
    DOCKER_CONFIG: engine.dockerConfig,
  };
}

/** Stops dockerd by its PID (pidfile first), waits for it, unmounts what it left, removes its folders. */
export async function stopDockerEngine(engine: DockerEngine, timeoutMs = 30_000): Promise<void> {
  const pid = (await readPidFile(join(engine.root, 'dockerd.pid'))) ?? engine.pid;
  if (isAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + timeoutMs;
    while (isAlive(pid) && Date.now() < deadline) await sleep(100);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
  await removeEngineRoot(engine.root);
}

async function removeEngineRoot(root: string): Promise<void> {
  await unmountBelow(root);
  await rm(root, { recursive: true, force: true });
}

/** Unmounts every mount point at or below `dir`, deepest first (exec-root/netns/default among them). */
export async function unmountBelow(dir: string): Promise<void> {
  const mountInfo = await readFile('/proc/self/mountinfo', 'utf8');
  const points = mountInfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    // mountinfo escapes spaces and the like as octal
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) {
    try {
      await execFileAsync('umount', ['-l', point]);
    } catch {
      // already gone with its parent
    }
  }
}

async function readPidFile(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers signal 0; it is dead for our purposes.
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

async function logTail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no dockerd log)';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
