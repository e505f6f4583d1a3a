import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { acquireLock, lockFileOf } from './lock.js';
import { LockHeldError } from '../renderer/core/errors.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir() {
  const d = await mkdtemp(join(tmpdir(), 'flotilla-lock-'));
  dirs.push(d);
  return d;
}

describe('the apply lock', () => {
  it('refuses a second agent while the first runs, naming its PID', async () => {
    const dir = await tempDir();
    const sleeper = spawn('sleep', ['30']);
    try {
      const first = await acquireLock(dir, sleeper.pid!);
      const err = await acquireLock(dir, process.pid).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockHeldError);
      expect((err as LockHeldError).message).toContain(`pid ${sleeper.pid}`);
      await first.release();
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('takes over a lock whose owner died', async () => {
    const dir = await tempDir();
    const gone = spawn('true');
    await new Promise((r) => gone.on('exit', r));
    await writeFile(lockFileOf(dir), `${gone.pid}\n`);
    const lock = await acquireLock(dir);
    expect((await readFile(lock.file, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
    await expect(readFile(lock.file)).rejects.toThrow(/ENOENT/);
  });
});
