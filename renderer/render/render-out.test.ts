// writeRenderedTrees on temp folders: it replaces its own earlier render, removes
// files a template no longer renders, and refuses anything it did not write.
import { mkdtemp, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OutputNotOursError, SettingError } from '../core/errors.js';
import { sha256 } from '../core/manifest.js';
import type { RenderedTenant } from './render.js';
import { RENDER_MARKER, writeRenderedTrees } from './render-out.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function outDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-render-out-'));
  dirs.push(dir);
  return dir;
}

const tenant = (slug: string, files: Record<string, string>): RenderedTenant =>
  ({ slug, paused: false, manifest: {} as RenderedTenant['manifest'], files: Object.entries(files).map(([path, content]) => ({ path, content, mode: 0o644 })) });

describe('writeRenderedTrees', () => {
  it('removes a file its earlier render wrote and this one does not, with its empty folder', async () => {
    const out = await outDir();
    await writeRenderedTrees(out, [tenant('a', { 'x.conf': '1\n', 'old/y.conf': '2\n' })]);
    await writeRenderedTrees(out, [tenant('a', { 'x.conf': '3\n' })]);
    expect(await readFile(join(out, 'a/x.conf'), 'utf8')).toBe('3\n');
    await expect(stat(join(out, 'a/old'))).rejects.toThrow(/ENOENT/);
    expect(JSON.parse(await readFile(join(out, 'a', RENDER_MARKER), 'utf8')).files).toEqual({
      'x.conf': [sha256('3\n')],
    });
  });

  it('refuses a symlink in its folder, and a tenant path that is not a folder', async () => {
    const out = await outDir();
    await writeRenderedTrees(out, [tenant('a', { 'x.conf': '1\n' })]);
    await symlink('/etc', join(out, 'a/etc'));
    await expect(writeRenderedTrees(out, [tenant('a', { 'x.conf': '1\n' })])).rejects.toThrow(/etc \(not a regular file\)/);
    await writeFile(join(out, 'b'), 'a file\n');
    const err = await writeRenderedTrees(out, [tenant('b', { 'x.conf': '1\n' })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutputNotOursError);
    expect(await readFile(join(out, 'b'), 'utf8')).toBe('a file\n');
  });

  it('takes an empty folder, and still owns a folder a crash left between its two markers', async () => {
    const out = await outDir();
    await mkdir(join(out, 'a'));
    await writeRenderedTrees(out, [tenant('a', { 'x.conf': '1\n' })]);
    // A crash after the first marker: the file may hold either the earlier or the new bytes.
    const marker = JSON.parse(await readFile(join(out, 'a', RENDER_MARKER), 'utf8'));
    marker.files['x.conf'].push('0'.repeat(64));
    await writeFile(join(out, 'a', RENDER_MARKER), JSON.stringify(marker));
    await writeRenderedTrees(out, [tenant('a', { 'x.conf': '2\n' })]);
    expect(await readFile(join(out, 'a/x.conf'), 'utf8')).toBe('2\n');
  });

  it('refuses a folder whose marker is not its own', async () => {
    const out = await outDir();
    await mkdir(join(out, 'a/.flotilla'), { recursive: true });
    await writeFile(join(out, 'a', RENDER_MARKER), '{"files":{"x.conf":["deadbeef"]}}');
    await writeFile(join(out, 'a/x.conf'), 'live\n');
    await expect(writeRenderedTrees(out, [tenant('a', { 'x.conf': '1\n' })])).rejects.toThrow(/x\.conf \(not written by flotilla render\)/);
    expect(await readFile(join(out, 'a/x.conf'), 'utf8')).toBe('live\n');
  });

  it('refuses, naming the path, an --out that is a file or lies under one, and writes nothing', async () => {
    const out = await outDir();
    await writeFile(join(out, 'notes.txt'), 'mine\n');
    const under = await writeRenderedTrees(join(out, 'notes.txt/sub'), [tenant('a', { 'x.conf': '1\n' })]).catch((e: unknown) => e);
    expect(under).toBeInstanceOf(SettingError);
    expect((under as SettingError).exitCode).toBe(2);
    expect((under as Error).message).toBe(`--out: cannot make ${join(out, 'notes.txt/sub')}: ${join(out, 'notes.txt')} is a file, not a folder`);
    const itself = await writeRenderedTrees(join(out, 'notes.txt'), [tenant('a', { 'x.conf': '1\n' })]).catch((e: unknown) => e);
    expect((itself as Error).message).toBe(`--out: ${join(out, 'notes.txt')} is a file, not a folder; give a folder to write the tenants into`);
    expect(await readFile(join(out, 'notes.txt'), 'utf8')).toBe('mine\n');
  });

  it('makes an --out that does not exist yet, several folders deep', async () => {
    const out = await outDir();
    await writeRenderedTrees(join(out, 'new/deeper'), [tenant('a', { 'x.conf': '1\n' })]);
    expect(await readFile(join(out, 'new/deeper/a/x.conf'), 'utf8')).toBe('1\n');
  });
});
