// One apply at a time per install, also across processes. Two lock files, both holding
// the owner's PID: `<state dir>/agent.lock` (the same agent started twice) and
// `<install dir>/.flotilla-agent.lock` (two agents with different state dirs on one
// install dir would share the staging dir beside it and delete each other's trees).
//
// A lock file is created whole with link(2) from a temp file, so nobody ever reads a
// half-written one (an empty file used to look stale and was taken from a live owner).
// A lock whose owner is gone (crash, kill -9) is taken over through a hard link named
// after that very file's identity: only one taker can create that name, and it removes
// the lock only when the link proves the name still holds the stale file.
import { link, mkdir, open, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
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

export function installLockFileOf(installDir: string): string {
  return join(installDir, '.flotilla-agent.lock');
}

interface LockContent {
  pid: number;
  /** Second line: the owner's state dir (install-dir locks), to name the other agent. */
  stateDir?: string;
}

function parseContent(text: string): LockContent {
  const [first = '', second] = text.split('\n');
  const pid = Number(first.trim());
  return { pid: Number.isInteger(pid) && pid > 0 ? pid : 0, ...(second?.trim() ? { stateDir: second.trim() } : {}) };
}

/** The lock as it is now, with the identity of the file read (undefined: no lock file). */
async function readLock(file: string): Promise<{ content: LockContent; id: string } | undefined> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    // Identity and content from one open file: the name may be replaced meanwhile, the file may not.
    const st = await handle.stat({ bigint: true });
    const content = parseContent(await handle.readFile('utf8'));
    return { content, id: `${st.ino}.${st.mtimeNs}` };
  } finally {
    await handle.close();
  }
}

/**
 * Removes `file` only if it is still the stale file `id`. The hard link `file.break-<id>`
 * can be created by one taker only, and links whatever the name holds at that instant:
 * its identity says whether that was still the stale file. Nobody else removes a lock
 * whose owner is dead, so the name cannot change between that check and the unlink.
 */
async function breakStale(file: string, id: string): Promise<void> {
  const breaker = `${file}.break-${id}`;
  try {
    await link(file, breaker);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // EEXIST: another taker is removing this very file; ENOENT: it is gone already.
    if (code === 'EEXIST' || code === 'ENOENT') return;
    throw e;
  }
  try {
    const st = await stat(breaker, { bigint: true });
    if (`${st.ino}.${st.mtimeNs}` === id) await unlink(file);
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

/**
 * Takes the lock file or throws LockHeldError naming the PID (and state dir) that holds it.
 * `stateDir`, when given, is written on the second line so a refused agent can name this one.
 */
export async function acquireLockFile(file: string, pid: number = process.pid, stateDir?: string): Promise<HeldLock> {
  const temp = `${file}.${pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, `${pid}\n${stateDir ? `${stateDir}\n` : ''}`, { mode: 0o600, flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(temp, file);
        return {
          file,
          release: async () => {
            const now = await readLock(file).catch(() => undefined);
            if (now?.content.pid === pid) await unlink(file).catch(() => undefined);
          },
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const held = await readLock(file);
      if (!held) continue;
      const owner = held.content.pid;
      if (owner > 0 && owner !== pid && alive(owner)) throw new LockHeldError(file, owner, held.content.stateDir);
      await breakStale(file, held.id);
    }
    const last = await readLock(file);
    throw new LockHeldError(file, last?.content.pid || undefined, last?.content.stateDir);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** Takes `<state dir>/agent.lock`, creating the state dir. */
export async function acquireLock(stateDir: string, pid: number = process.pid): Promise<HeldLock> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  return acquireLockFile(lockFileOf(stateDir), pid);
}

/**
 * Both locks an apply needs: the state dir's, then the install dir's. The second refusal
 * names the agent that holds the install dir by PID and state dir.
 */
export async function acquireAgentLocks(config: { stateDir: string; installDir: string }, pid: number = process.pid): Promise<HeldLock> {
  const state = await acquireLock(config.stateDir, pid);
  let install: HeldLock;
  try {
    install = await acquireLockFile(installLockFileOf(config.installDir), pid, config.stateDir);
  } catch (e) {
    await state.release();
    throw e;
  }
  return {
    file: install.file,
    release: async () => {
      await install.release();
      await state.release();
    },
  };
}
