// Publish: commit each tenant's rendered tree to its branch `tenants/<slug>` so the
// branch tree is exactly the render, only where it changed, then push (never forced).
//
// Trees are hashed in memory first and compared with the remote branch's tree, so
// an unchanged fleet costs one ls-refs and no object writes. New trees and blobs go
// into a bare work dir (no checkout, no index) as one pack per push.
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import git, { Errors } from 'isomorphic-git';
import { GitError, RenderedOutputError } from '../core/errors.js';
import {
  ensureBareRepo,
  fetchAllBranches,
  fetchBranch,
  gitError,
  hasObject,
  listRemoteBranches,
  nodeGitDeps,
  remoteBranchHead,
  sanitizeUrl,
  sourceTrailer,
  type GitAuth,
  type GitDeps,
} from '../core/git.js';
import { pushBranches, PUSH_BATCH_SIZE, storePack } from '../core/receive-pack.js';
import type { RenderedFile } from '../core/manifest.js';
import { signCommitPayload } from '../core/signing.js';
import type { KeyObject } from 'node:crypto';

/** A rendered file; content may also be bytes. */
export type PublishFile = Omit<RenderedFile, 'content'> & { content: string | Uint8Array };

export interface PublishTenant {
  slug: string;
  /** The whole tree, `.flotilla/manifest.json` included. */
  files: PublishFile[];
  /**
   * The same render under another source commit. Headers and the manifest name the
   * source commit, so every new main commit changes every tree; a branch whose tree
   * equals this tenant's render under the branch's own `Flotilla-Source` has nothing
   * new for its host and gets no commit.
   */
  renderAt?: (source: { repo: string; commit: string }) => PublishFile[];
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
  /** Branches fetched at the same time when moved branches are rebuilt on their new heads. */
  pushConcurrency?: number;
  /** Branches per receive-pack request: every changed branch goes up in one request per this many. */
  pushBatchSize?: number;
  /** Attempts per branch when the remote branch keeps moving under us. */
  maxPushAttempts?: number;
  deps?: GitDeps;
  /** Called as each tenant is compared with its branch, then as each branch is pushed (for a progress bar). */
  onProgress?: (event: { phase: 'compare' | 'push'; done: number; total: number; slug: string }) => void;
  /** Ed25519 key (see core/signing.ts): every tenant commit gets an SSH signature agents can check. */
  signingKey?: KeyObject;
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
  type: 'blob' | 'tree' | 'commit';
  content: Buffer;
}

export interface BuiltTree {
  /** Root tree id. */
  oid: string;
  /** Every blob and tree the root needs, children before parents. */
  objects: GitObjectBytes[];
}

function hashObject(type: GitObjectBytes['type'], content: Buffer): string {
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

export interface CommitFields {
  tree: string;
  parents: readonly string[];
  author: { name: string; email: string; timestamp: number };
  message: string;
  /** Signs the unsigned commit text; returns an armored signature. */
  sign?: (payload: string) => string;
}

/** What isomorphic-git does to a message (and a signature): no CR, no leading newlines, one final newline. */
const normalizeNewlines = (text: string): string => `${text.replace(/\r/g, '').replace(/^\n+/, '').replace(/\n+$/, '')}\n`;

/**
 * A commit object, byte for byte as isomorphic-git's commit() writes it (a test holds
 * the two equal, signed and unsigned), built in memory: commit() resolves refs, takes
 * the index lock and writes a loose file, ~12 ms a call here, and a fleet-wide change
 * makes a thousand commits. Author and committer are the same, in UTC.
 */
export function buildCommit(fields: CommitFields): GitObjectBytes {
  const who = `${fields.author.name} <${fields.author.email}> ${fields.author.timestamp} +0000`;
  const headers = `tree ${fields.tree}\n${fields.parents.map((p) => `parent ${p}\n`).join('')}author ${who}\ncommitter ${who}\n`;
  const message = normalizeNewlines(fields.message);
  const unsigned = `${headers}\n${message}`;
  let text = unsigned;
  if (fields.sign) {
    const signature = normalizeNewlines(fields.sign(unsigned)).trim().split('\n').map((line) => ` ${line}`).join('\n');
    text = `${headers}gpgsig${signature}\n\n${message}`;
  }
  const content = Buffer.from(text, 'utf8');
  return { oid: hashObject('commit', content), type: 'commit', content };
}

/** The entries of a tree object's content: mode, name, object id. */
function treeEntries(content: Buffer): { mode: string; name: string; oid: string }[] {
  const entries: { mode: string; name: string; oid: string }[] = [];
  let at = 0;
  while (at < content.length) {
    const space = content.indexOf(0x20, at);
    const nul = content.indexOf(0, space);
    entries.push({
      mode: content.subarray(at, space).toString('latin1'),
      name: content.subarray(space + 1, nul).toString('utf8'),
      oid: content.subarray(nul + 1, nul + 21).toString('hex'),
    });
    at = nul + 21;
  }
  return entries;
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

const TREE_CACHE_FILE = 'flotilla-tree-cache.json';

async function readTreeCache(gitdir: string): Promise<Map<string, string>> {
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
 * Packs in the work dir beyond which it starts afresh. Each publish that commits adds
 * one; reading an object looks through every pack's index, so a cache kept for months
 * would slow every run. Starting afresh costs one cold run (one fetch of every tip).
 */
export const MAX_CACHE_PACKS = 64;

/**
 * Empties a cluttered work dir of what publish put there (objects, fetched refs, the
 * tree cache), only when the tree cache file shows the folder is publish's own.
 */
async function restartClutteredCache(gitdir: string): Promise<void> {
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

async function writeTreeCache(gitdir: string, entries: Map<string, string>): Promise<void> {
  const file = join(gitdir, TREE_CACHE_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(Object.fromEntries(entries)));
  await rename(`${file}.tmp`, file);
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
    pushBatchSize = PUSH_BATCH_SIZE,
    deps = nodeGitDeps,
  } = options;
  const { fs } = deps;
  const cache = {};

  // Pure first: a bad render fails before anything touches git.
  const planned = options.tenants.map((t) => ({
    slug: t.slug,
    branch: `${branchPrefix}${t.slug}`,
    tree: buildTree(t.slug, t.files),
    renderAt: t.renderAt,
  }));

  await restartClutteredCache(gitdir);
  await ensureBareRepo(gitdir, deps);
  const remote = await listRemoteBranches(url, branchPrefix, auth, deps);
  const fetchOptions = { depth: 1, ...(auth ? { auth } : {}) };

  // Commit ids never change meaning, so commit -> tree is cached across runs: an
  // unchanged fleet then reads no git object at all.
  const treeCache = await readTreeCache(gitdir);
  const treeOf = async (commit: string): Promise<string | undefined> => {
    const known = treeCache.get(commit);
    if (known) return known;
    try {
      const tree = (await git.readCommit({ fs, gitdir, oid: commit, cache })).commit.tree;
      treeCache.set(commit, tree);
      return tree;
    } catch (err) {
      if (err instanceof Errors.NotFoundError) return undefined;
      throw gitError(`read commit ${commit}`, gitdir, err);
    }
  };
  const requireTree = async (commit: string): Promise<string> => {
    const tree = await treeOf(commit);
    if (!tree) throw new GitError(`read commit ${commit}`, gitdir, 'commit is missing after fetch');
    return tree;
  };

  // Remote tips we know nothing about are fetched: one by one when few, in one fetch when many.
  const unknown: string[] = [];
  for (const t of planned) {
    const head = remote.get(t.branch);
    if (head && !(await treeOf(head))) unknown.push(t.branch);
  }
  if (unknown.length > 8) {
    await fetchAllBranches(gitdir, url, fetchOptions, deps);
    for (const branch of unknown) {
      // A branch that moved since ls-refs was fetched at its new tip.
      if (!(await treeOf(remote.get(branch) as string))) {
        remote.set(branch, await git.resolveRef({ fs, gitdir, ref: `refs/remotes/origin/${branch}` }));
      }
    }
  } else {
    for (const branch of unknown) remote.set(branch, await fetchBranch(gitdir, url, branch, fetchOptions, deps));
  }

  /**
   * Trees and blobs of `built` the parent's tree does not hold, walking down only where
   * the two differ: what the remote lacks for this commit, as the parent is on the remote.
   */
  const objectsBeyondParent = async (built: BuiltTree, parent: string | undefined): Promise<string[]> => {
    const byOid = new Map(built.objects.map((o) => [o.oid, o]));
    const out: string[] = [];
    const visit = async (oid: string, theirsOid: string | undefined): Promise<void> => {
      out.push(oid);
      const theirs = new Map<string, string>();
      if (theirsOid) {
        try {
          for (const e of (await git.readTree({ fs, gitdir, oid: theirsOid, cache })).tree) theirs.set(`${e.type} ${e.path}`, e.oid);
        } catch (err) {
          // Not local (or not a tree): send the whole subtree, the server keeps one copy.
          if (!(err instanceof Errors.NotFoundError || err instanceof Errors.ObjectTypeError)) throw err;
        }
      }
      for (const entry of treeEntries((byOid.get(oid) as GitObjectBytes).content)) {
        const isTree = entry.mode === '40000';
        const old = theirs.get(`${isTree ? 'tree' : 'blob'} ${entry.name}`);
        if (old === entry.oid) continue;
        if (isTree) await visit(entry.oid, old);
        else out.push(entry.oid);
      }
    };
    const parentTree = parent ? await treeOf(parent) : undefined;
    if (parentTree === built.oid) return [];
    await visit(built.oid, parentTree);
    return out;
  };

  /** Trees, blobs and commits this run built, so the push packs them without reading them back. */
  const inMemory = new Map<string, GitObjectBytes>();
  /** Those not yet in the work dir: stored as one pack before each push. */
  let unstored: GitObjectBytes[] = [];
  /** Per pushed branch: the new commit, the remote head it builds on, the objects to send. */
  const created = new Map<string, { commit: string; parent: string | undefined; objects: string[] }>();
  const commitTree = async (t: (typeof planned)[number], parent: string | undefined): Promise<void> => {
    try {
      for (const object of t.tree.objects) {
        if (inMemory.has(object.oid)) continue;
        inMemory.set(object.oid, object);
        unstored.push(object);
      }
      const commitObject = buildCommit({
        tree: t.tree.oid,
        parents: parent ? [parent] : [],
        author: { ...author, timestamp: Math.floor(Date.now() / 1000) },
        message: tenantCommitMessage(t.slug, source),
        ...(options.signingKey ? { sign: (payload: string) => signCommitPayload(payload, options.signingKey!) } : {}),
      });
      const commit = commitObject.oid;
      inMemory.set(commit, commitObject);
      unstored.push(commitObject);
      treeCache.set(commit, t.tree.oid);
      created.set(t.branch, { commit, parent, objects: await objectsBeyondParent(t.tree, parent) });
    } catch (err) {
      throw gitError(`commit ${t.branch}`, gitdir, err);
    }
  };

  // Same tree as the branch holds, once rendered under the source commit the branch names?
  const sameRenderAsBranch = async (t: (typeof planned)[number], head: string): Promise<boolean> => {
    if (!t.renderAt) return false;
    let message: string;
    try {
      message = (await git.readCommit({ fs, gitdir, oid: head, cache })).commit.message;
    } catch (err) {
      if (err instanceof Errors.NotFoundError) return false;
      throw gitError(`read commit ${head}`, gitdir, err);
    }
    const branchSource = sourceTrailer(message);
    if (!branchSource || branchSource === source.commit) return false;
    return buildTree(t.slug, t.renderAt({ repo: source.repo, commit: branchSource })).oid === (await requireTree(head));
  };

  const unchanged = new Set<string>();
  const toPush: (typeof planned)[number][] = [];
  let compared = 0;
  for (const t of planned) {
    options.onProgress?.({ phase: 'compare', done: compared++, total: planned.length, slug: t.slug });
    let head = remote.get(t.branch);
    if (head && ((await requireTree(head)) === t.tree.oid || (await sameRenderAsBranch(t, head)))) {
      unchanged.add(t.slug);
      continue;
    }
    // The parent must be local for the push; the tree cache may have spared us its fetch so far.
    if (head && !(await hasObject(gitdir, head, deps, cache))) {
      head = await fetchBranch(gitdir, url, t.branch, fetchOptions, deps);
      if ((await requireTree(head)) === t.tree.oid || (await sameRenderAsBranch(t, head))) {
        unchanged.add(t.slug);
        continue;
      }
    }
    await commitTree(t, head);
    toPush.push(t);
  }

  const committed = new Set<string>();
  options.onProgress?.({ phase: 'compare', done: planned.length, total: planned.length, slug: '' });
  let pushedCount = 0;
  // Every changed branch in one receive-pack request (per batch); branches someone moved
  // meanwhile are rebuilt on their new heads and go up together in the next round.
  let pending = toPush;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > maxPushAttempts) {
      const names = pending.map((t) => t.branch);
      throw new GitError(
        `push ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
        sanitizeUrl(url),
        `the branch kept moving; gave up after ${maxPushAttempts} attempts`,
      );
    }
    await storePack(gitdir, unstored);
    unstored = [];
    const updates = pending.map((t) => {
      const { commit, parent, objects } = created.get(t.branch)!;
      return { branch: t.branch, commit, expected: parent ?? null, objects };
    });
    const results = await pushBranches(gitdir, url, updates, auth, deps, {
      batchSize: pushBatchSize,
      known: (oid) => inMemory.get(oid),
    });
    const moved: (typeof planned)[number][] = [];
    const refused: string[] = [];
    for (const t of pending) {
      const result = results.get(t.branch);
      if (result?.status === 'pushed') {
        committed.add(t.slug);
        options.onProgress?.({ phase: 'push', done: ++pushedCount, total: toPush.length, slug: t.slug });
      } else if (result?.status === 'rejected') moved.push(t);
      else refused.push(`${t.branch} (${result?.reason ?? 'no result'})`);
    }
    if (refused.length > 0) {
      throw new GitError('push', sanitizeUrl(url), `the server refused ${refused.join(', ')}`);
    }
    // Someone else moved these branches: build on their commits, never force.
    const next: (typeof planned)[number][] = [];
    await forEachLimited(moved, pushConcurrency, async (t) => {
      const head = await remoteBranchHead(url, t.branch, auth, deps);
      const fetched = head ? await fetchBranch(gitdir, url, t.branch, fetchOptions, deps) : undefined;
      if (fetched && (await requireTree(fetched)) === t.tree.oid) {
        unchanged.add(t.slug);
        return;
      }
      await commitTree(t, fetched);
      next.push(t);
    });
    const nextSet = new Set(next);
    pending = planned.filter((t) => nextSet.has(t));
  }

  // Keep only the tips we may meet next time, so the cache stays the size of the fleet.
  const keep = new Map<string, string>();
  for (const head of remote.values()) {
    const tree = treeCache.get(head);
    if (tree) keep.set(head, tree);
  }
  for (const { commit } of created.values()) {
    const tree = treeCache.get(commit);
    if (tree) keep.set(commit, tree);
  }
  await writeTreeCache(gitdir, keep);

  const inOrder = (set: Set<string>) => planned.map((t) => t.slug).filter((slug) => set.has(slug));
  return { committed: inOrder(committed), unchanged: inOrder(unchanged), pushed: committed.size > 0 };
}
