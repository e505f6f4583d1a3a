// Debian's docker-registry (distribution 2.8) on 127.0.0.1:<free port>, with a
// config file and filesystem storage of its own. Registries on 127.0.0.0/8 need
// no TLS for dockerd, so pushes and pulls work without any daemon setting.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Registry {
  /** `127.0.0.1:PORT`, the prefix of image names pushed here. */
  address: string;
  pid: number;
  root: string;
  logFile: string;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface StartRegistryOptions {
  parentDir?: string;
  binary?: string;
  readyTimeoutMs?: number;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<Registry> {
  const parent = opts.parentDir ?? process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir();
  await mkdir(parent, { recursive: true });
  const root = await mkdtemp(join(parent, 'registry-'));
  const port = await freeLoopbackPort();
  const address = `127.0.0.1:${port}`;
  const configFile = join(root, 'config.yml');
  const logFile = join(root, 'registry.log');
  await writeFile(
    configFile,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(root, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${address}`,
      '',
    ].join('\n'),
  );

  const log = openSync(logFile, 'a');
  const child = spawn(opts.binary ?? 'docker-registry', ['serve', configFile], {
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error('docker-registry could not be started (is docker-registry installed?)');
  const registry: Registry = { address, pid: child.pid, root, logFile };
  // scripts/test.sh stops whatever a crashed run left behind by these pidfiles.
  await writeFile(join(root, 'registry.pid'), `${child.pid}\n`);

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
      await rm(root, { recursive: true, force: true });
      throw new Error(`docker-registry exited during start:\n${tail}`);
    }
    try {
      const res = await fetch(`http://${address}/v2/`);
      if (res.ok) return registry;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopRegistry(registry);
      throw new Error(`docker-registry did not answer on ${address} in time`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Tags of a repository as the registry lists them (sorted). */
export async function registryTags(registry: Pick<Registry, 'address'>, repository: string): Promise<string[]> {
  const res = await fetch(`http://${registry.address}/v2/${repository}/tags/list`);
  if (res.status === 404) return [];
  if (!res.ok) throw new Error(`registry ${registry.address}: tags of ${repository}: HTTP ${res.status}`);
  const body = (await res.json()) as { tags?: string[] | null };
  return [...(body.tags ?? [])].sort();
}

export async function stopRegistry(registry: Registry, timeoutMs = 10_000): Promise<void> {
  if (isAlive(registry.pid)) {
    process.kill(registry.pid, 'SIGTERM');
    const deadline = Date.now() + timeoutMs;
    while (isAlive(registry.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (isAlive(registry.pid)) process.kill(registry.pid, 'SIGKILL');
  }
  await rm(registry.root, { recursive: true, force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** The registry's own log, for a failing test's message. */
export async function registryLog(registry: Registry): Promise<string> {
  return readFile(registry.logFile, 'utf8').catch(() => '');
}
