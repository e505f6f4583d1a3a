// `flotilla render --out DIR` writes DIR/<slug>/ for each tenant. Such a folder may
// be pointed at anything, a live install (`--out /srv`) included, so a render replaces
// only what an earlier render wrote there: it leaves a marker listing each file it
// wrote with its hash, and a folder holding anything else (no marker, a file the
// marker does not list, a file changed since) is refused before any tenant is written.
import { lstat, mkdir, readdir, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.js';
import { OutputNotOursError, SettingError } from '../core/errors.js';
import { sha256 } from '../core/manifest.js';
import type { RenderedTenant } from './render.js';

/** In each tenant folder: what flotilla render wrote there, path -> the sha256s the file may have. */
export const RENDER_MARKER = '.flotilla/rendered-by-flotilla-render.json';

interface RenderMarker {
  writtenBy: 'flotilla render';
  /** Two hashes while a render is under way (the earlier and the new bytes), so a crash leaves a folder it still owns. */
  files: Record<string, string[]>;
}

interface FoundFile {
  path: string;
  kind: 'file' | 'other';
}

/** Every entry under `dir` (relative paths), without following symlinks; [] when `dir` is absent. */
async function entriesUnder(dir: string, rel = ''): Promise<FoundFile[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, rel));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return [];
    throw e;
  }
  const found: FoundFile[] = [];
  for (const name of names.sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const info = await lstat(join(dir, path));
    if (info.isDirectory()) found.push(...(await entriesUnder(dir, path)));
    else found.push({ path, kind: info.isFile() ? 'file' : 'other' });
  }
  return found;
}

async function readMarker(dir: string): Promise<RenderMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, RENDER_MARKER), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const marker = JSON.parse(text) as RenderMarker;
    if (marker.writtenBy === 'flotilla render' && marker.files && typeof marker.files === 'object') return marker;
  } catch {
    // an unreadable marker vouches for nothing
  }
  return undefined;
}

/**
 * The files in `dir` that an earlier render wrote and that are still as it wrote them.
 * @throws OutputNotOursError naming what the folder holds that flotilla render did not write.
 */
async function ownedFiles(dir: string): Promise<string[]> {
  const info = await lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!info) return [];
  if (!info.isDirectory()) throw new OutputNotOursError(dir, ['it is not a folder']);
  const found = (await entriesUnder(dir)).filter((f) => f.path !== RENDER_MARKER);
  const marker = await readMarker(dir);
  const foreign: string[] = [];
  for (const f of found) {
    const written = marker?.files[f.path];
    if (f.kind !== 'file') foreign.push(`${f.path} (not a regular file)`);
    else if (!Array.isArray(written)) foreign.push(`${f.path} (not written by flotilla render)`);
    else if (!written.includes(sha256(await readFile(join(dir, f.path))))) foreign.push(`${f.path} (changed since flotilla render wrote it)`);
  }
  if (foreign.length > 0) throw new OutputNotOursError(dir, foreign);
  return found.map((f) => f.path);
}

async function writeMarker(dir: string, files: Record<string, string[]>): Promise<void> {
  const marker: RenderMarker = { writtenBy: 'flotilla render', files };
  await mkdir(dirname(join(dir, RENDER_MARKER)), { recursive: true });
  await writeFileAtomic(join(dir, RENDER_MARKER), `${JSON.stringify(marker, null, 2)}\n`, { mode: 0o644 });
}

/** Removes `rel`'s parent folders under `dir` that became empty. */
async function removeEmptyParents(dir: string, rel: string): Promise<void> {
  for (let parent = dirname(rel); parent !== '.' && parent !== ''; parent = dirname(parent)) {
    try {
      await rmdir(join(dir, parent));
    } catch {
      return; // not empty: a file of the new render or a parent of one
    }
  }
}

/**
 * `outDir` is a folder, or can be made one: the nearest part of it that exists is a folder.
 * @throws SettingError naming that part when it is a file (`--out notes.txt/sub`).
 */
async function checkOutDir(outDir: string): Promise<void> {
  for (let path = outDir; ; path = dirname(path)) {
    const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
      throw e;
    });
    if (info?.isDirectory()) return;
    if (info)
      throw new SettingError(
        '--out',
        path === outDir ? `${outDir} is a file, not a folder; give a folder to write the tenants into` : `cannot make ${outDir}: ${path} is a file, not a folder`,
      );
    if (dirname(path) === path) return;
  }
}

/**
 * Writes each tenant's files under `outDir/<slug>/`, replacing what an earlier
 * render left there. Every tenant folder is checked before any is written, so a
 * refusal changes nothing.
 */
export async function writeRenderedTrees(outDir: string, rendered: RenderedTenant[]): Promise<void> {
  await checkOutDir(outDir);
  const owned = new Map<string, string[]>();
  for (const tenant of rendered) owned.set(tenant.slug, await ownedFiles(join(outDir, tenant.slug)));
  for (const tenant of rendered) {
    const dir = join(outDir, tenant.slug);
    const earlier = owned.get(tenant.slug)!;
    const hashes = new Map(tenant.files.map((f) => [f.path, sha256(f.content)]));
    // First a marker vouching for both the earlier and the new bytes of every path, then the files, then the final marker.
    const during: Record<string, string[]> = {};
    for (const path of earlier) during[path] = [sha256(await readFile(join(dir, path)))];
    for (const [path, hash] of hashes) during[path] = [...(during[path] ?? []), hash];
    await writeMarker(dir, during);
    for (const path of earlier) {
      if (hashes.has(path)) continue;
      await unlink(join(dir, path));
      await removeEmptyParents(dir, path);
    }
    for (const file of tenant.files) {
      const target = join(dir, file.path);
      await mkdir(dirname(target), { recursive: true });
      await writeFileAtomic(target, file.content, { mode: file.mode });
    }
    await writeMarker(dir, Object.fromEntries([...hashes].map(([path, hash]) => [path, [hash]])));
  }
}
