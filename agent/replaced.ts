// Copies of the files an apply replaced that were not Flotilla's (a host's own config
// on first contact, a hand edit replaced under heal or by the operator's decision).
// They live in <stateDir>/replaced/<UTC stamp>/<path>, each folder with a
// <stamp>.json beside it naming the commit and why each file went, and are never
// deleted by the agent: the only copy of an operator's work is not Flotilla's to drop.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { sha256 } from '../renderer/core/manifest.js';
import { foreignReplaced, type ApplyPlan } from './apply.js';
import { localFiles, type LocalFiles } from './local-files.js';

export interface ReplacedFileRecord {
  path: string;
  kind: 'unowned' | 'local-change';
  /** Who decided the replacement: fleet, host or heal. */
  by: string;
  sha256: string;
  size: number;
}

export interface ReplacedSet {
  /** Folder holding the copies, under the state dir. */
  dir: string;
  stamp: string;
  commit: string;
  at: string;
  files: ReplacedFileRecord[];
}

export function replacedRoot(stateDir: string): string {
  return join(stateDir, 'replaced');
}

/** 20261203T121943Z: sorts by time, and needs no quoting in a `cp` line. */
function stampOf(at: Date): string {
  return at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * Copies every file the plan replaces without being Flotilla's, as it is on disk now,
 * before the swap. Returns undefined when there is nothing to keep. The copies are
 * mode 0600: a host's own config may hold secrets.
 */
export async function keepReplacedFiles(
  plan: ApplyPlan,
  where: { stateDir: string; commit: string; at: Date },
  files: LocalFiles = localFiles,
): Promise<ReplacedSet | undefined> {
  const replaced = foreignReplaced(plan);
  if (replaced.length === 0) return undefined;
  const root = replacedRoot(where.stateDir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  // Two applies in one second get two folders, never one folder mixing both.
  const base = stampOf(where.at);
  let stamp = base;
  for (let i = 2; ; i++) {
    try {
      await mkdir(join(root, stamp), { mode: 0o700 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      stamp = `${base}-${i}`;
    }
  }
  const dir = join(root, stamp);
  const set: ReplacedSet = { dir, stamp, commit: where.commit, at: where.at.toISOString(), files: [] };
  for (const file of replaced) {
    const current = await files.readManaged(plan.installDir, file.path);
    if (!current) continue;
    await files.writeManaged(dir, file.path, current.content, 0o600);
    set.files.push({
      path: file.path,
      kind: file.foreign!.kind,
      by: file.foreign!.by ?? 'host',
      sha256: sha256(current.content),
      size: current.content.length,
    });
  }
  await writeFileAtomic(join(root, `${stamp}.json`), `${JSON.stringify({ commit: set.commit, at: set.at, files: set.files }, null, 2)}\n`, {
    mode: 0o600,
  });
  return set;
}

/** Drops the copies of an apply that was rolled back: the files are back in place, so the copies say something false. */
export async function discardReplacedSet(stateDir: string, set: ReplacedSet): Promise<void> {
  await rm(join(replacedRoot(stateDir), `${set.stamp}.json`), { force: true });
  await rm(set.dir, { recursive: true, force: true });
}

/** Every kept set, oldest first. */
export async function listReplaced(stateDir: string): Promise<ReplacedSet[]> {
  const root = replacedRoot(stateDir);
  let names: string[];
  try {
    names = await readdir(root);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const sets: ReplacedSet[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const stamp = name.slice(0, -'.json'.length);
    try {
      const raw = JSON.parse(await readFile(join(root, name), 'utf8')) as Omit<ReplacedSet, 'dir' | 'stamp'>;
      sets.push({ dir: join(root, stamp), stamp, commit: String(raw.commit), at: String(raw.at), files: raw.files ?? [] });
    } catch {
      // A record cut short by a crash still leaves its folder; list what the folder holds.
      sets.push({ dir: join(root, stamp), stamp, commit: '?', at: '?', files: [] });
    }
  }
  return sets;
}

/** The plan's section on kept copies: where each is, and the command that puts it back. */
export function renderReplaced(sets: ReplacedSet[], installDir: string): string[] {
  if (sets.length === 0) return [];
  const out = ['replaced files kept (never deleted by the agent; restore with cp, then `flotilla-agent accept PATH` to keep it):'];
  for (const set of sets) {
    out.push(`  ${set.stamp} (commit ${set.commit.slice(0, 12)}):`);
    for (const f of set.files) {
      const why = f.kind === 'unowned' ? 'not written by Flotilla' : 'local change';
      out.push(`    ${f.path} (${why}, replaced by decision of ${f.by}, ${f.size.toLocaleString('en-US')} B)`);
      out.push(`      cp ${shellQuote(join(set.dir, f.path))} ${shellQuote(join(installDir, f.path))}`);
    }
  }
  return out;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
