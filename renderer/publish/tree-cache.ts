// The tree cache of publish's work dir: commit id -> root tree id, kept in a JSON file
// beside the bare repository. Commit ids never change meaning, so an unchanged fleet
// reads no git object at all. Also the rule that starts a cluttered work dir afresh.
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The cache file in the work dir; its presence also marks the folder as publish's own. */
export const TREE_CACHE_FILE = 'flotilla-tree-cache.json';

/** Packs in the work dir beyond which it starts afresh (see restartClutteredCache). */
export const MAX_CACHE_PACKS = 64;

/** The cached commit -> tree pairs; empty when the file is missing or unreadable. */
export async function readTreeCache(gitdir: string): Promise<Map<string, string>> {
  try {
    const text = await readFile(join(gitdir, TREE_CACHE_FILE), 'utf8');
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return new Map(
      Object.entries(parsed).filter(
        (e): e is [string, string] => /^[0-9a-f]{40}$/.test(e[0]) && typeof e[1] === 'string' && /^[0-9a-f]{40}$/.test(e[1]),
      ),
    );
  } catch {
    // Missing or unreadable: it is only a cache.
    return new Map();
  }
}

/**
 * Empties a cluttered work dir of what publish put there (objects, fetched refs, the
 * tree cache), only when the tree cache file shows the folder is publish's own.
 *
 * Each publish that commits adds one pack; reading an object looks through every
 * pack's index, so a cache kept for months would slow every run. Past MAX_CACHE_PACKS
 * the work dir starts afresh, which costs one cold run (one fetch of every tip).
 */
export async function restartClutteredCache(gitdir: string): Promise<void> {
  let packs: string[];
  try {
    await access(join(gitdir, TREE_CACHE_FILE));
    packs = (await readdir(join(gitdir, 'objects', 'pack'))).filter((name) => name.endsWith('.pack'));
  } catch {
    return;
  }
  if (packs.length <= MAX_CACHE_PACKS) return;
  await rm(join(gitdir, TREE_CACHE_FILE), { force: true });
  for (const sub of ['objects', join('refs', 'remotes'), 'shallow']) await rm(join(gitdir, sub), { recursive: true, force: true });
  await mkdir(join(gitdir, 'objects', 'pack'), { recursive: true });
}

/** Replaces the cache file with `entries` (written aside, then renamed over it). */
export async function writeTreeCache(gitdir: string, entries: Map<string, string>): Promise<void> {
  const file = join(gitdir, TREE_CACHE_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(Object.fromEntries(entries)));
  await rename(`${file}.tmp`, file);
}
