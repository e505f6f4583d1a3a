import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UnsafePathError } from '../renderer/core/errors.js';
import { sha256 } from '../renderer/core/manifest.js';
import { hashManaged, readManaged, removeManaged, writeManaged } from './local-files.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';

const snapshot = (dir: string) => snapshotTree(dir);

let root: string;
let install: string;
let outside: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-local-files-'));
  install = join(root, 'install');
  outside = join(root, 'outside');
  await mkdir(install);
  await mkdir(outside);
  await writeFile(join(outside, 'victim.conf'), 'outside the install dir\n');
  await mkdir(join(install, 'nginx'));
  await writeFile(join(install, 'nginx', 'site.conf'), 'server {}\n', { mode: 0o644 });
  await writeFile(join(install, 'host-notes.txt'), 'mine\n');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('confined file access', () => {
  it('reads, hashes, writes (creating parent dirs, with the given mode) and removes', async () => {
    expect(await readManaged(install, 'nginx/site.conf')).toEqual({ content: Buffer.from('server {}\n'), mode: 0o644 });
    expect(await readManaged(install, 'absent.conf')).toBeUndefined();
    expect(await readManaged(install, 'no/such/dir.conf')).toBeUndefined();
    expect(await hashManaged(install, 'nginx/site.conf')).toBe(sha256('server {}\n'));

    await writeManaged(install, 'scripts/deep/run.sh', '#!/bin/sh\n', 0o755);
    expect(await readFile(join(install, 'scripts/deep/run.sh'), 'utf8')).toBe('#!/bin/sh\n');
    expect((await stat(join(install, 'scripts/deep/run.sh'))).mode & 0o777).toBe(0o755);

    await writeManaged(install, 'nginx/site.conf', 'server { listen 80; }\n', 0o644);
    expect(await readFile(join(install, 'nginx/site.conf'), 'utf8')).toBe('server { listen 80; }\n');

    expect(await removeManaged(install, 'nginx/site.conf')).toBe(true);
    expect(await removeManaged(install, 'nginx/site.conf')).toBe(false);
    expect(await readdir(join(install, 'nginx'))).toEqual([]);
    expect(await readFile(join(install, 'host-notes.txt'), 'utf8')).toBe('mine\n');
  });

  it.each([
    ['../outside/victim.conf', /would leave the install dir/],
    ['nginx/../../outside/victim.conf', /would leave the install dir/],
    [join(tmpdir(), 'outside/victim.conf'), /absolute path/],
    ['/etc/passwd', /absolute path/],
    ['nginx//site.conf', /segment "" is not allowed/],
    ['./site.conf', /segment "\." is not allowed/],
    ['nginx\\site.conf', /backslash/],
    ['', /empty path/],
  ])('refuses %j and changes nothing', async (bad, message) => {
    const before = { install: await snapshot(install), outside: await snapshot(outside) };
    for (const op of [
      () => writeManaged(install, bad, 'pwned\n', 0o644),
      () => readManaged(install, bad),
      () => removeManaged(install, bad),
      () => hashManaged(install, bad),
    ]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafePathError);
      expect((err as Error).message).toMatch(message);
    }
    expect({ install: await snapshot(install), outside: await snapshot(outside) }).toEqual(before);
  });

  it('refuses a path through a symlinked directory, for reading and writing', async () => {
    await symlink(outside, join(install, 'conf'));
    const before = { install: await snapshot(install), outside: await snapshot(outside) };
    await expect(writeManaged(install, 'conf/victim.conf', 'pwned\n', 0o644)).rejects.toThrow(/conf is a symlink/);
    await expect(writeManaged(install, 'conf/new/file.conf', 'pwned\n', 0o644)).rejects.toThrow(UnsafePathError);
    await expect(readManaged(install, 'conf/victim.conf')).rejects.toThrow(UnsafePathError);
    await expect(removeManaged(install, 'conf/victim.conf')).rejects.toThrow(UnsafePathError);
    expect({ install: await snapshot(install), outside: await snapshot(outside) }).toEqual(before);
  });

  it('refuses a managed file that is a symlink, even one pointing inside the install dir', async () => {
    await symlink(join(outside, 'victim.conf'), join(install, 'compose.yml'));
    await symlink('host-notes.txt', join(install, 'inside-link.txt'));
    const before = { install: await snapshot(install), outside: await snapshot(outside) };
    for (const path of ['compose.yml', 'inside-link.txt']) {
      await expect(writeManaged(install, path, 'pwned\n', 0o644)).rejects.toThrow(/the file is a symlink/);
      await expect(readManaged(install, path)).rejects.toThrow(/the file is a symlink/);
      await expect(hashManaged(install, path)).rejects.toThrow(UnsafePathError);
      await expect(removeManaged(install, path)).rejects.toThrow(UnsafePathError);
    }
    expect({ install: await snapshot(install), outside: await snapshot(outside) }).toEqual(before);
  });

  it('refuses a parent that is a file and a managed path that is a directory', async () => {
    const before = await snapshot(install);
    await expect(writeManaged(install, 'host-notes.txt/inner.conf', 'x', 0o644)).rejects.toThrow(/host-notes.txt is not a directory/);
    await expect(writeManaged(install, 'nginx', 'x', 0o644)).rejects.toThrow(/not a regular file/);
    await expect(readManaged(install, 'nginx')).rejects.toThrow(/not a regular file/);
    expect(await snapshot(install)).toEqual(before);
  });

  it('accepts an install dir that is itself a symlink (the operator chose it)', async () => {
    const linked = join(root, 'linked-install');
    await symlink(install, linked);
    await writeManaged(linked, 'compose.yml', 'services: {}\n', 0o644);
    expect(await readFile(join(install, 'compose.yml'), 'utf8')).toBe('services: {}\n');
  });
});
