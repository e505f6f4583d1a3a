// Publish: commit each tenant's rendered tree to its branch `tenants/<slug>` so the
// branch tree is exactly the render, only where it changed, then push (never forced).
//
// Trees are hashed in memory first and compared with the remote branch's tree, so
// an unchanged fleet costs one ls-refs and no object writes. Objects are written
// straight into a bare work dir (no checkout, no index).
import { createHash } from 'node:crypto';
import git from 'isomorphic-git';
import { GitError, RenderedOutputError } from './core/errors.js';
import {
  ensureBareRepo,
  fetchAllBranches,
  fetchBranch,
  gitError,
  hasObject,
  listRemoteBranches,
  nodeGitDeps,
  pushBranch,
  remoteBranchHead,
  sanitizeUrl,
  type GitAuth,
  type GitDeps,
} from './core/git.js';
import type { RenderedFile } from './core/manifest.js';

/** A rendered file; content may also be bytes. */
export type PublishFile = Omit<RenderedFile, 'content'> & { content: string | Uint8Array };

export interface PublishTenant {
  slug: string;
  /** The whole tree, `.flotilla/manifest.json` included. */
  files: PublishFile[];
}

export interface PublishOptions {
  repoUrl: string;
  auth?: GitAuth;
  /** A bare repository kept between runs as a cache; created when missing. */
  workDir: string;
  tenants: PublishTenant[];
  source: { repo: string; commit: string };
  branchPrefix?: string;
  author?: { name: string; email: string };
  /** Branches pushed at the same time. */
  pushConcurrency?: number;
  /** Attempts per branch when the remote branch keeps moving under us. */
  maxPushAttempts?: number;
  deps?: GitDeps;
}

export interface PublishResult {
  /** Tenants that got a new commit on their branch (pushed). */
  committed: string[];
  /** Tenants whose branch already held exactly this render. */
  unchanged: string[];
  pushed: boolean;
}

export const DEFAULT_AUTHOR = { name: 'Flotilla', email: 'flotilla@localhost' };

interface GitObjectBytes {
  oid: string;
  type: 'blob' | 'tree';
  content: Buffer;
}

export interface BuiltTree {
  /** Root tree id. */
  oid: string;
  /** Every blob and tree the root needs, children before parents. */
  objects: GitObjectBytes[];
}

function hashObject(type: 'blob' | 'tree', content: Buffer): string {
  return createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
}

interface DirNode {
  files: Map<string, { oid: string; mode: string }>;
  dirs: Map<string, DirNode>;
}

/**
 * The git tree of a rendered file list, hashed in memory (pure). Paths are checked:
 * relative, no empty/`.`/`..` segments, no duplicates, no file that is also a folder.
 */
export function buildTree(tenant: string, files: readonly PublishFile[]): BuiltTree {
  const root: DirNode = { files: new Map(), dirs: new Map() };
  const objects: GitObjectBytes[] = [];
  const seenBlobs = new Set<string>();
  for (const file of files) {
    const fail = (why: string): never => {
      throw new RenderedOutputError(file.path, tenant, why);
    };
    const parts = file.path.split('/');
    if (file.path.includes('\\') || file.path.includes('\0')) fail('path holds a backslash or NUL');
    if (parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git'))
      fail('path must be relative with no empty, ".", ".." or ".git" segment');
    const mode = file.mode === 0o755 ? '100755' : file.mode === 0o644 ? '100644' : fail(`mode ${file.mode.toString(8)} is not 644 or 755`);
    const content = typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : Buffer.from(file.content);
    const oid = hashObject('blob', content);
    if (!seenBlobs.has(oid)) {
      seenBlobs.add(oid);
      objects.push({ oid, type: 'blob', content });
    }
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      if (dir.files.has(part)) fail(`"${part}" is both a file and a folder`);
      let next = dir.dirs.get(part);
      if (!next) {
        next = { files: new Map(), dirs: new Map() };
        dir.dirs.set(part, next);
      }
      dir = next;
    }
    const name = parts[parts.length - 1] as string;
    if (dir.files.has(name)) fail('duplicate path');
    if (dir.dirs.has(name)) fail(`"${name}" is both a file and a folder`);
    dir.files.set(name, { oid, mode });
  }
  const writeDir = (dir: DirNode): string => {
    const entries: { sortKey: Buffer; bytes: Buffer }[] = [];
    for (const [name, sub] of dir.dirs) {
      const oid = writeDir(sub);
      // git orders a folder as if its name ended with "/".
      entries.push({ sortKey: Buffer.from(`${name}/`), bytes: treeEntry('40000', name, oid) });
    }
    for (const [name, { oid, mode }] of dir.files) {
      entries.push({ sortKey: Buffer.from(name), bytes: treeEntry(mode, name, oid) });
    }
    entries.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    const content = Buffer.concat(entries.map((e) => e.bytes));
    const oid = hashObject('tree', content);
    objects.push({ oid, type: 'tree', content });
    return oid;
  };
  return { oid: writeDir(root), objects };
}

function treeEntry(mode: string, name: string, oid: string): Buffer {
  return Buffer.concat([Buffer.from(`${mode} ${name}\0`), Buffer.from(oid, 'hex')]);
}

export function tenantCommitMessage(slug: string, source: { repo: string; commit: string }): string {
  return `Render tenant ${slug} from ${source.repo}@${source.commit.slice(0, 12)}\n\nFlotilla-Source: ${source.commit}\n`;
}

/** Runs `work` over `items` with at most `limit` at a time, in order of start. */
async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(runners);
}

export async function publishTenants(options: PublishOptions): Promise<PublishResult> {
  const {
    repoUrl: url,
    auth,
    workDir: gitdir,
    source,
    branchPrefix = 'tenants/',
    author = DEFAULT_AUTHOR,
    pushConcurrency = 4,
    maxPushAttempts = 5,
    deps = nodeGitDeps,
  } = options;
  const { fs } = deps;
  const cache = {};

  // Pure first: a bad render fails before anything touches git.
  const planned = options.tenants.map((t) => ({
    slug: t.slug,
    branch: `${branchPrefix}${t.slug}`,
    tree: buildTree(t.slug, t.files),
  }));

  await ensureBareRepo(gitdir, deps);
  const remote = await listRemoteBranches(url, branchPrefix, auth, deps);

  // The remote tips must be local to read their trees; fetch only what is missing.
  const missing: string[] = [];
  for (const t of planned) {
    const oid = remote.get(t.branch);
    if (oid && !(await hasObject(gitdir, oid, deps, cache))) missing.push(t.branch);
  }
  if (missing.length > 8) {
    await fetchAllBranches(gitdir, url, { depth: 1, ...(auth ? { auth } : {}) }, deps);
  } else {
    for (const branch of missing) {
      remote.set(branch, await fetchBranch(gitdir, url, branch, { depth: 1, ...(auth ? { auth } : {}) }, deps));
    }
  }

  const treeOf = async (commit: string): Promise<string> => {
    try {
      return (await git.readCommit({ fs, gitdir, oid: commit, cache })).commit.tree;
    } catch (err) {
      throw gitError(`read commit ${commit}`, gitdir, err);
    }
  };

  const written = new Set<string>();
  const commitTree = async (t: (typeof planned)[number], parent: string | undefined): Promise<void> => {
    try {
      for (const object of t.tree.objects) {
        if (written.has(object.oid)) continue;
        await git.writeObject({ fs, gitdir, type: object.type, object: object.content, format: 'content' });
        written.add(object.oid);
      }
      const timestamp = Math.floor(Date.now() / 1000);
      const who = { ...author, timestamp, timezoneOffset: 0 };
      await git.commit({
        fs,
        gitdir,
        ref: `refs/heads/${t.branch}`,
        tree: t.tree.oid,
        parent: parent ? [parent] : [],
        message: tenantCommitMessage(t.slug, source),
        author: who,
        committer: who,
      });
    } catch (err) {
      throw gitError(`commit ${t.branch}`, gitdir, err);
    }
  };

  const unchanged = new Set<string>();
  const toPush: (typeof planned)[number][] = [];
  for (const t of planned) {
    const head = remote.get(t.branch);
    if (head && (await treeOf(head)) === t.tree.oid) {
      unchanged.add(t.slug);
      continue;
    }
    await commitTree(t, head);
    toPush.push(t);
  }

  const committed = new Set<string>();
  await forEachLimited(toPush, pushConcurrency, async (t) => {
    for (let attempt = 1; attempt <= maxPushAttempts; attempt++) {
      if ((await pushBranch(gitdir, url, t.branch, auth, deps)) === 'pushed') {
        committed.add(t.slug);
        return;
      }
      // Rejected: someone else moved the branch. Build on their commit, never force.
      const head = await remoteBranchHead(url, t.branch, auth, deps);
      const fetched = head
        ? await fetchBranch(gitdir, url, t.branch, { depth: 1, ...(auth ? { auth } : {}) }, deps)
        : undefined;
      if (fetched && (await treeOf(fetched)) === t.tree.oid) {
        unchanged.add(t.slug);
        return;
      }
      await commitTree(t, fetched);
    }
    throw new GitError(
      `push ${t.branch}`,
      sanitizeUrl(url),
      `the branch kept moving; gave up after ${maxPushAttempts} attempts`,
    );
  });

  const inOrder = (set: Set<string>) => planned.map((t) => t.slug).filter((slug) => set.has(slug));
  return { committed: inOrder(committed), unchanged: inOrder(unchanged), pushed: committed.size > 0 };
}
