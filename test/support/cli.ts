// The `flotilla` CLI run in-process from a test (stdout, stderr and the exit code a
// user would see), and the throwaway folders such tests work in.
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { CliIo } from '../../renderer/cli.js';
import { runCli } from '../../renderer/main.js';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `flotilla ARGS` in `cwd` with only `env` as its environment. */
export async function runFlotilla(args: string[], cwd: string, env: CliIo['env'] = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), cwd, env };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

/** A maker of temp folders named `prefix…`, each removed after the test that made it. Call at a test file's top level. */
export function tempDirs(prefix: string): () => Promise<string> {
  const made: string[] = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/** Copies `templates/` and `fleet/` (or `fleetDir` as fleet/) of `repoRoot` into `into`. */
export async function copyFleetCheckout(repoRoot: string, into: string, fleetDir = join(repoRoot, 'fleet')): Promise<string> {
  await cp(join(repoRoot, 'templates'), join(into, 'templates'), { recursive: true });
  await cp(fleetDir, join(into, 'fleet'), { recursive: true });
  return into;
}
