// Crash-safe file replacement: a reader (compose, the agent after a restart)
// sees either the old file or the new one, never a half-written one.
import { randomBytes } from 'node:crypto';
import { constants, promises as nodeFs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UnsafePathError } from './errors.js';

/** The file-system calls writeFileAtomic makes; tests pass a wrapper to inject faults. */
export interface AtomicWriteFs {
  lstat: typeof nodeFs.lstat;
  open: typeof nodeFs.open;
  rename: typeof nodeFs.rename;
  unlink: typeof nodeFs.unlink;
}

export interface AtomicWriteOptions {
  /**
   * Permission bits for the file. When omitted, an existing file keeps its
   * mode and a new one gets 0o666 minus the umask, as `writeFile` would.
   */
  mode?: number;
}

/**
 * Writes `data` to `path` through a temp file in the same directory
 * (fsync, then rename over the target, then fsync of the directory).
 * An existing file keeps its owner and group, and its mode unless
 * `opts.mode` says otherwise. On any failure the temp file is removed and
 * the target is left as it was.
 *
 * Refuses to replace a symlink (the rename would replace the link, not the
 * file it points to) or anything that is not a regular file.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
  fs: AtomicWriteFs = nodeFs,
): Promise<void> {
  const existing = await lstatOrUndefined(fs, path);
  if (existing?.isSymbolicLink()) {
    throw new UnsafePathError(path, 'is a symlink; refusing to replace it');
  }
  if (existing && !existing.isFile()) {
    throw new UnsafePathError(path, 'exists and is not a regular file');
  }

  const mode = opts.mode ?? (existing ? existing.mode & 0o7777 : undefined);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);

  let handle: FileHandle | undefined;
  try {
    // O_EXCL: never reuse (or follow) a path someone else created.
    handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode ?? 0o666);
    // The umask applied at creation; an explicit or inherited mode must survive it.
    if (mode !== undefined) await handle.chmod(mode);
    if (existing) {
      const own = await handle.stat();
      if (own.uid !== existing.uid || own.gid !== existing.gid) {
        await handle.chown(existing.uid, existing.gid);
      }
    }
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(fs, dirname(path));
}

async function lstatOrUndefined(fs: AtomicWriteFs, path: string) {
  try {
    return await fs.lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Makes the rename itself durable; some file systems refuse fsync on a directory, which is fine. */
async function syncDirectory(fs: AtomicWriteFs, dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // The data is already renamed into place; durability of the directory entry is best effort.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
