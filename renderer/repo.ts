// The fleet checkout: its remote URL, its author, revisions as a user types them, the
// fleet files at a revision, and one commit on a new branch. The only place outside
// core/ that talks to isomorphic-git, so every command reads the repo the same way.
import * as nodeFs from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { GitError, SettingError } from './core/errors.js';
import { byCodeUnits } from './core/manifest.js';
import { pushBranch, type GitAuth } from './core/git.js';
import type { RenderSource } from './render/render.js';

/** The folders a render reads. */
export const FLEET_INPUT_DIRS = ['fleet', 'templates'] as const;

export interface FleetFiles {
  /** Repo-relative path -> UTF-8 content, for every file under fleet/ and templates/. */
  files: Map<string, string>;
  /** Repo-relative path -> permission bits (0o644 or 0o755). */
  modes: Map<string, number>;
}

export interface FilesAtRef extends FleetFiles {
  commit: string;
}

/** Blob texts by object id, for reading two revisions that share most files. */
export type BlobTexts = Map<string, string>;

export interface Author {
  name: string;
  email: string;
}

async function configValue(root: string, path: string): Promise<string | undefined> {
  try {
    return ((await git.getConfig({ fs: nodeFs, dir: root, path })) as string | undefined) || undefined;
  } catch {
    return undefined; // not a repository, or no config: the same as unset
  }
}

/** The URL of `remote` (default origin), or undefined when the checkout has none. */
export function remoteUrl(root: string, remote = 'origin'): Promise<string | undefined> {
  return configValue(root, `remote.${remote}.url`);
}

/** The URL of `remote`; fails naming the checkout when it has none. */
export async function requireRemoteUrl(root: string, remote = 'origin'): Promise<string> {
  const url = await remoteUrl(root, remote);
  if (!url) throw new SettingError('remote', `the repository at ${root} has no remote "${remote}"`);
  return url;
}

/** user.name / user.email of the checkout, as `git commit` would take them, else Flotilla's own. */
export async function gitAuthor(root: string): Promise<Author> {
  return {
    name: (await configValue(root, 'user.name')) ?? 'Flotilla',
    email: (await configValue(root, 'user.email')) ?? 'flotilla@localhost',
  };
}

/**
 * The source the manifests name: given explicitly, else the HEAD commit and origin URL
 * of the checkout, else placeholders saying there is none.
 */
export async function resolveSource(root: string, given: { repo?: string; commit?: string } = {}): Promise<RenderSource> {
  let commit = given.commit;
  if (commit === undefined) {
    try {
      commit = await git.resolveRef({ fs: nodeFs, dir: root, ref: 'HEAD' });
    } catch {
      commit = 'uncommitted';
    }
  }
  return { repo: given.repo ?? (await remoteUrl(root)) ?? root, commit };
}

// ---- revisions -----------------------------------------------------------

/** `name` followed by any number of `~N`, `^N`, `~` and `^`, as gitrevisions(7) spells ancestry. */
const REVISION = /^(.*?)((?:[~^]\d*)*)$/;

/**
 * Resolves a revision the way `git rev-parse` does for the forms people type: a branch,
 * `origin/main`, a tag (annotated ones peeled), HEAD, a full or abbreviated commit id,
 * each followed by `~N` / `^N` ancestry (`HEAD~1`, `main^`, `origin/main~3`, `HEAD^2`).
 */
export async function resolveCommit(dir: string, revision: string, fs: typeof nodeFs = nodeFs): Promise<string> {
  const [, name = '', ancestry = ''] = REVISION.exec(revision.trim()) ?? [];
  if (name === '') throw unknownRevision(dir, revision, 'no branch, tag or commit named before the ~ or ^');
  let oid = await resolveName(dir, name, fs);
  if (oid === undefined) throw unknownRevision(dir, revision, `no branch, tag or commit ${JSON.stringify(name)}`);
  for (const [, op, digits] of ancestry.matchAll(/([~^])(\d*)/g)) {
    const n = digits === '' ? 1 : Number(digits);
    if (op === '^') {
      if (n === 0) continue;
      oid = await nthParent(dir, fs, revision, oid, n);
    } else {
      for (let i = 0; i < n; i++) oid = await nthParent(dir, fs, revision, oid, 1);
    }
  }
  // A shallow clone names parents it does not hold: the revision exists, this clone lacks it.
  if (ancestry !== '' && !(await hasCommit(dir, oid, fs))) throw unknownRevision(dir, revision, `commit ${oid.slice(0, 12)} is not in this clone`);
  return oid;
}

async function hasCommit(dir: string, oid: string, fs: typeof nodeFs): Promise<boolean> {
  return git.readCommit({ fs, dir, oid }).then(
    () => true,
    () => false,
  );
}

async function resolveName(dir: string, name: string, fs: typeof nodeFs): Promise<string | undefined> {
  for (const candidate of [name, `refs/remotes/${name}`, `refs/tags/${name}`, `refs/heads/${name}`]) {
    try {
      return await commitOf(dir, await git.resolveRef({ fs, dir, ref: candidate }), fs);
    } catch {
      // try the next spelling
    }
  }
  if (/^[0-9a-f]{4,40}$/i.test(name)) {
    try {
      return await commitOf(dir, await git.expandOid({ fs, dir, oid: name.toLowerCase() }), fs);
    } catch {
      // not an object here (or ambiguous): unknown below
    }
  }
  return undefined;
}

/** The commit an object names, peeling annotated tags. */
async function commitOf(dir: string, oid: string, fs: typeof nodeFs): Promise<string> {
  const { type, object } = await git.readObject({ fs, dir, oid, format: 'parsed' });
  if (type === 'tag') return commitOf(dir, (object as { object: string }).object, fs);
  if (type !== 'commit') throw new Error(`${oid} is a ${type}, not a commit`);
  return oid;
}

async function nthParent(dir: string, fs: typeof nodeFs, revision: string, oid: string, n: number): Promise<string> {
  let parents: string[];
  try {
    parents = (await git.readCommit({ fs, dir, oid })).commit.parent;
  } catch (e) {
    throw unknownRevision(dir, revision, `commit ${oid.slice(0, 12)} is not in this clone`, e);
  }
  const parent = parents[n - 1];
  if (parent === undefined) {
    const has = parents.length === 0 ? 'no parent' : `${parents.length} parent${parents.length === 1 ? '' : 's'}`;
    throw unknownRevision(dir, revision, `commit ${oid.slice(0, 12)} has ${has}`);
  }
  return parent;
}

function unknownRevision(dir: string, revision: string, why: string, cause?: unknown): GitError {
  // Only a shallow clone can lack history that exists: say how to fetch it there, nowhere else.
  const shallow = nodeFs.existsSync(join(dir, '.git', 'shallow'));
  const hint = shallow ? '; this is a shallow clone, fetch the history first (git fetch --unshallow, or fetch-depth: 0 in Actions)' : '';
  return new GitError('resolve', dir, `unknown revision ${JSON.stringify(revision)}: ${why}${hint}`, cause === undefined ? undefined : { cause });
}

/** The first parent of `commit`; a root commit has nothing to roll back to. */
export async function parentOf(root: string, commit: string): Promise<string> {
  const { commit: c } = await git.readCommit({ fs: nodeFs, dir: root, oid: commit });
  const parent = c.parent[0];
  if (!parent) throw new SettingError('--to', `${commit.slice(0, 12)} has no parent; name the commit to roll back to with --to`);
  return parent;
}

// ---- fleet files ---------------------------------------------------------

/** Every file under fleet/ and templates/ at `ref` of the repository in `dir`. */
export async function readFleetFilesAtRef(
  dir: string,
  ref: string,
  fs: typeof nodeFs = nodeFs,
  blobs: BlobTexts = new Map(),
): Promise<FilesAtRef> {
  const commit = await resolveCommit(dir, ref, fs);
  const files = new Map<string, string>();
  const modes = new Map<string, number>();
  const cache = {};
  const walk = async (treeOid: string, prefix: string): Promise<void> => {
    const { tree } = await git.readTree({ fs, dir, oid: treeOid, cache });
    for (const entry of tree) {
      const path = `${prefix}${entry.path}`;
      if (entry.type === 'tree') await walk(entry.oid, `${path}/`);
      else if (entry.type === 'blob' && entry.mode !== '120000') {
        let text = blobs.get(entry.oid);
        if (text === undefined) {
          const { blob } = await git.readBlob({ fs, dir, oid: entry.oid, cache });
          text = Buffer.from(blob).toString('utf8');
          blobs.set(entry.oid, text);
        }
        files.set(path, text);
        modes.set(path, entry.mode === '100755' ? 0o755 : 0o644);
      }
    }
  };
  try {
    const { commit: c } = await git.readCommit({ fs, dir, oid: commit, cache });
    const { tree: root } = await git.readTree({ fs, dir, oid: c.tree, cache });
    for (const top of FLEET_INPUT_DIRS) {
      const entry = root.find((e) => e.path === top && e.type === 'tree');
      if (entry) await walk(entry.oid, `${top}/`);
    }
  } catch (e) {
    throw new GitError(`read ${ref}`, dir, (e as Error).message, { cause: e });
  }
  return { commit, files: new Map([...files].sort(([a], [b]) => byCodeUnits(a, b))), modes };
}

/** Every file under fleet/ and templates/ in the working tree at `dir`. */
export async function readFleetFilesFromDir(dir: string): Promise<FleetFiles> {
  const files = new Map<string, string>();
  const modes = new Map<string, number>();
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const entry of entries) {
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        files.set(path, await readFile(join(dir, path), 'utf8'));
        modes.set(path, ((await stat(join(dir, path))).mode & 0o111) !== 0 ? 0o755 : 0o644);
      }
    }
  };
  for (const top of FLEET_INPUT_DIRS) await walk(top);
  return { files: new Map([...files].sort(([a], [b]) => byCodeUnits(a, b))), modes };
}

// ---- one commit on a new branch -----------------------------------------

export interface BranchCommit {
  /** Working checkout (its .git is used; the working tree is not touched). */
  dir: string;
  /** Commit the branch starts from. */
  parent: string;
  branch: string;
  /** Repo-relative path -> new content. */
  edits: Map<string, string>;
  message: string;
  author: Author;
  fs?: typeof nodeFs;
}

/** Replaces (or adds) the files in `edits` under `treeOid`, writing new trees bottom-up. */
async function rewriteTree(fs: typeof nodeFs, dir: string, treeOid: string | undefined, edits: Map<string, string>): Promise<string> {
  const entries = treeOid ? (await git.readTree({ fs, dir, oid: treeOid })).tree : [];
  const here = new Map(entries.map((e) => [e.path, e]));
  const byChild = new Map<string, Map<string, string>>();
  for (const [path, content] of edits) {
    const slash = path.indexOf('/');
    if (slash === -1) {
      const oid = await git.writeBlob({ fs, dir, blob: Buffer.from(content, 'utf8') });
      const mode = here.get(path)?.mode === '100755' ? '100755' : '100644';
      here.set(path, { path, oid, mode, type: 'blob' });
    } else {
      const child = path.slice(0, slash);
      const rest = byChild.get(child) ?? new Map<string, string>();
      rest.set(path.slice(slash + 1), content);
      byChild.set(child, rest);
    }
  }
  for (const [child, rest] of byChild) {
    const existing = here.get(child);
    const oid = await rewriteTree(fs, dir, existing?.type === 'tree' ? existing.oid : undefined, rest);
    here.set(child, { path: child, oid, mode: '040000', type: 'tree' });
  }
  return git.writeTree({ fs, dir, tree: [...here.values()] });
}

/** Whether the checkout has a local branch `branch`. */
export function localBranchExists(dir: string, branch: string, fs: typeof nodeFs = nodeFs): Promise<boolean> {
  return git.resolveRef({ fs, dir, ref: `refs/heads/${branch}` }).then(
    () => true,
    () => false,
  );
}

/** Deletes the local branch `branch`. */
export async function deleteLocalBranch(dir: string, branch: string, fs: typeof nodeFs = nodeFs): Promise<void> {
  await git.deleteRef({ fs, dir, ref: `refs/heads/${branch}` });
}

/** Writes one commit with `edits` on top of `parent` to a new local branch; returns its id. */
export async function commitOnNewBranch(opts: BranchCommit): Promise<string> {
  const fs = opts.fs ?? nodeFs;
  const { dir, branch } = opts;
  try {
    if (await localBranchExists(dir, branch, fs))
      throw new GitError('branch', dir, `branch ${branch} already exists; delete it (git branch -D ${branch}) or bump to another tag`);
    const { commit } = await git.readCommit({ fs, dir, oid: opts.parent });
    const tree = await rewriteTree(fs, dir, commit.tree, opts.edits);
    const timestamp = Math.floor(Date.now() / 1000);
    const who = { ...opts.author, timestamp, timezoneOffset: 0 };
    const oid = await git.writeCommit({
      fs,
      dir,
      commit: { message: opts.message, tree, parent: [opts.parent], author: who, committer: who },
    });
    await git.writeRef({ fs, dir, ref: `refs/heads/${branch}`, value: oid });
    return oid;
  } catch (e) {
    if (e instanceof GitError) throw e;
    throw new GitError(`commit ${branch}`, dir, (e as Error).message, { cause: e });
  }
}

/** Pushes the local branch to `url`; `rejected` when the remote has a different branch of that name. */
export function pushLocalBranch(dir: string, url: string, branch: string, auth?: GitAuth): Promise<'pushed' | 'rejected'> {
  return pushBranch(join(dir, '.git'), url, branch, auth);
}
