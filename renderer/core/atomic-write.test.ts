import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, type AtomicWriteFs } from './atomic-write.js';
import { UnsafePathError } from './errors.js';

const isRoot = process.getuid?.() === 0;

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'flotilla-atomic-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('creates a new file with the given mode, whatever the umask', async () => {
    const path = join(dir, 'secret.env');
    const oldUmask = process.umask(0o077);
    try {
      await writeFileAtomic(path, 'A=1\n', { mode: 0o640 });
    } finally {
      process.umask(oldUmask);
    }
    expect(await fs.readFile(path, 'utf8')).toBe('A=1\n');
    expect((await fs.stat(path)).mode & 0o7777).toBe(0o640);
    expect(await fs.readdir(dir)).toEqual(['secret.env']);
  });

  it('creates a new file without a mode as writeFile would (0666 minus the umask)', async () => {
    const path = join(dir, 'plain');
    const oldUmask = process.umask(0o022);
    try {
      await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    } finally {
      process.umask(oldUmask);
    }
    expect((await fs.stat(path)).mode & 0o777).toBe(0o644);
    expect([...(await fs.readFile(path))]).toEqual([1, 2, 3]);
  });

  it('replaces an existing file as a new inode, keeping its mode', async () => {
    const path = join(dir, 'compose.yaml');
    await fs.writeFile(path, 'old');
    await fs.chmod(path, 0o751);
    const before = await fs.stat(path);
    await writeFileAtomic(path, 'new');
    const after = await fs.stat(path);
    expect(await fs.readFile(path, 'utf8')).toBe('new');
    expect(after.mode & 0o7777).toBe(0o751);
    // A new inode is what makes the swap atomic: readers holding the old file keep reading it whole.
    expect(after.ino).not.toBe(before.ino);
  });

  it('lets an explicit mode override the existing one', async () => {
    const path = join(dir, 'run.sh');
    await fs.writeFile(path, 'old');
    await fs.chmod(path, 0o644);
    await writeFileAtomic(path, 'new', { mode: 0o755 });
    expect((await fs.stat(path)).mode & 0o7777).toBe(0o755);
  });

  it.runIf(isRoot)('keeps the owner and group of an existing file', async () => {
    const path = join(dir, '.env');
    await fs.writeFile(path, 'old');
    await fs.chown(path, 4321, 8765);
    await writeFileAtomic(path, 'new');
    const after = await fs.stat(path);
    expect([after.uid, after.gid]).toEqual([4321, 8765]);
  });

  it('leaves the old file and no temp file behind when the rename fails', async () => {
    const path = join(dir, '.env');
    await fs.writeFile(path, 'old');
    const failingRename: AtomicWriteFs = {
      ...fs,
      rename: async () => {
        throw Object.assign(new Error('EIO: simulated rename failure'), { code: 'EIO' });
      },
    };
    await expect(writeFileAtomic(path, 'new', {}, failingRename)).rejects.toThrow(/simulated rename failure/);
    expect(await fs.readFile(path, 'utf8')).toBe('old');
    expect(await fs.readdir(dir)).toEqual(['.env']);
  });

  it('fails without leaving a temp file when the directory does not exist', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'x'), 'data')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it('refuses to replace a symlink and leaves the link and its target alone', async () => {
    const target = join(dir, 'target');
    const link = join(dir, 'link');
    await fs.writeFile(target, 'target');
    await fs.symlink(target, link);
    await expect(writeFileAtomic(link, 'new')).rejects.toBeInstanceOf(UnsafePathError);
    expect((await fs.lstat(link)).isSymbolicLink()).toBe(true);
    expect(await fs.readFile(target, 'utf8')).toBe('target');
  });

  it('refuses to replace a directory', async () => {
    const sub = join(dir, 'sub');
    await fs.mkdir(sub);
    await expect(writeFileAtomic(sub, 'new')).rejects.toBeInstanceOf(UnsafePathError);
    expect((await fs.stat(sub)).isDirectory()).toBe(true);
  });
});
