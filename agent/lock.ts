// One apply at a time per install, also across processes: an exclusive lock file
// holding the owner's PID. A lock whose owner is gone (crash, kill -9) is taken over.
import { open, readFile, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LockHeldError } from '../renderer/core/errors.js';

export interface HeldLock {
  file: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function lockFileOf(stateDir: string): string {
  return join(stateDir, 'agent.lock');
}

/** Takes the lock or throws LockHeldError naming the PID that holds it. */
export async function acquireLock(stateDir: string, pid: number = process.pid): Promise<HeldLock> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = lockFileOf(stateDir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${pid}\n`);
      await handle.close();
      return {
        file,
        release: async () => {
          const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
          if (owner === pid) await unlink(file).catch(() => undefined);
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== pid && alive(owner)) throw new LockHeldError(file, owner);
      // Stale: the owner is gone. Remove and try once more (a racing taker wins by O_EXCL).
      await unlink(file).catch(() => undefined);
    }
  }
  throw new LockHeldError(file);
}
