// The only code that touches files in the install dir (and the staging and backup
// trees, which follow the same rules). Every access goes through `resolveConfined`:
// a relative POSIX path, no `..`, no symlink anywhere on the way, and the managed
// file itself a regular file. A refusal happens before any byte is written.
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { UnsafePathError } from '../renderer/core/errors.js';
import { sha256 } from '../renderer/core/manifest.js';

export interface LocalFile {
  content: Buffer;
  /** Permission bits (mode & 0o7777). */
  mode: number;
}

/** The file operations an apply needs; tests wrap these to inject faults. */
export interface LocalFiles {
  readManaged(root: string, relPath: string): Promise<LocalFile | undefined>;
  writeManaged(root: string, relPath: string, content: string | Uint8Array, mode: number): Promise<void>;
  removeManaged(root: string, relPath: string): Promise<boolean>;
  hashManaged(root: string, relPath: string): Promise<string | undefined>;
  removeWriteLeftovers(root: string, relPath: string): Promise<string[]>;
}

interface ConfinedPath {
  absolute: string;
  /** The file exists (and is a regular file). */
  exists: boolean;
  /** Ancestor directories that do not exist yet, outermost first. */
  missingDirs: string[];
}

/** Syntax only: what a relative path inside the root may look like. */
export function checkRelativePath(relPath: string): string[] {
  const refuse = (why: string): never => {
    throw new UnsafePathError(relPath, why);
  };
  if (typeof relPath !== 'string' || relPath.length === 0) refuse('empty path');
  if (relPath.includes('\0')) refuse('NUL byte in path');
  if (relPath.startsWith('/')) refuse('absolute path');
  if (relPath.includes('\\')) refuse('backslash in path (paths are POSIX)');
  const parts = relPath.split('/');
  for (const part of parts) {
    if (part === '..') refuse('".." would leave the install dir');
    if (part === '' || part === '.') refuse(`path segment ${JSON.stringify(part)} is not allowed`);
  }
  return parts;
}

/**
 * Resolves `relPath` under `root`, refusing a path that leaves the root, passes
 * through a symlink or a non-directory, or names something other than a regular
 * file. The root itself may be a symlink (an operator's choice, resolved once).
 */
export async function resolveConfined(root: string, relPath: string): Promise<ConfinedPath> {
  const parts = checkRelativePath(relPath);
  const realRoot = await realpath(root);
  let current = realRoot;
  const missingDirs: string[] = [];
  for (const [i, part] of parts.entries()) {
    current = join(current, part);
    const isLast = i === parts.length - 1;
    if (missingDirs.length > 0) {
      if (!isLast) missingDirs.push(current);
      continue;
    }
    const stat = await lstatOrUndefined(current);
    const shown = parts.slice(0, i + 1).join('/');
    if (!stat) {
      if (!isLast) missingDirs.push(current);
      continue;
    }
    if (stat.isSymbolicLink())
      throw new UnsafePathError(relPath, isLast ? 'the file is a symlink' : `${shown} is a symlink`);
    if (!isLast && !stat.isDirectory()) throw new UnsafePathError(relPath, `${shown} is not a directory`);
    if (isLast && !stat.isFile()) throw new UnsafePathError(relPath, 'not a regular file');
  }
  const exists = missingDirs.length === 0 && (await lstatOrUndefined(current)) !== undefined;
  return { absolute: current, exists, missingDirs };
}

export async function readManaged(root: string, relPath: string): Promise<LocalFile | undefined> {
  const target = await resolveConfined(root, relPath);
  if (!target.exists) return undefined;
  // O_NOFOLLOW closes the gap between the check above and the open.
  const handle = await open(target.absolute, constants.O_RDONLY | constants.O_NOFOLLOW).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafePathError(relPath, 'the file is a symlink');
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  });
  if (!handle) return undefined;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new UnsafePathError(relPath, 'not a regular file');
    return { content: await handle.readFile(), mode: stat.mode & 0o7777 };
  } finally {
    await handle.close();
  }
}

/** sha256 of the file's bytes, or undefined when it does not exist. */
export async function hashManaged(root: string, relPath: string): Promise<string | undefined> {
  const file = await readManaged(root, relPath);
  return file ? sha256(file.content) : undefined;
}

/**
 * Writes atomically (temp file + rename in the same directory), creating missing
 * parent directories one at a time so none of them can be a symlink planted
 * between the check and the write. The rename replaces a name, so it never
 * writes through a symlink either.
 */
export async function writeManaged(
  root: string,
  relPath: string,
  content: string | Uint8Array,
  mode: number,
): Promise<void> {
  const target = await resolveConfined(root, relPath);
  for (const dir of target.missingDirs) {
    try {
      await mkdir(dir, { mode: 0o755 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const stat = await lstat(dir);
      if (!stat.isDirectory() || stat.isSymbolicLink())
        throw new UnsafePathError(relPath, `${dir} appeared as something other than a directory`);
    }
  }
  await writeFileAtomic(target.absolute, content, { mode });
}

/** Removes the file; returns false when it did not exist. Directories are left in place. */
export async function removeManaged(root: string, relPath: string): Promise<boolean> {
  const target = await resolveConfined(root, relPath);
  if (!target.exists) return false;
  try {
    await unlink(target.absolute);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Removes the temp files a killed writeFileAtomic can leave beside `relPath`
 * (`.<name>.<pid>.<12 hex>.tmp`, its naming); nothing else in the directory is
 * looked at. Returns the names removed.
 */
export async function removeWriteLeftovers(root: string, relPath: string): Promise<string[]> {
  const target = await resolveConfined(root, relPath);
  if (target.missingDirs.length > 0) return [];
  const dir = dirname(target.absolute);
  const name = basename(target.absolute).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = new RegExp(`^\\.${name}\\.\\d+\\.[0-9a-f]{12}\\.tmp$`);
  const removed: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !pattern.test(entry.name)) continue;
    await unlink(join(dir, entry.name)).catch(() => undefined);
    removed.push(entry.name);
  }
  return removed;
}

export const localFiles: LocalFiles = { readManaged, writeManaged, removeManaged, hashManaged, removeWriteLeftovers };

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') throw new UnsafePathError(path, 'a parent is not a directory');
    throw e;
  }
}
