// Publish: commit each tenant's rendered tree to its branch `tenants/<slug>` so the
// branch tree is exactly the render, only where it changed, then push (never forced).
//
// Trees are hashed in memory first and compared with the remote branch's tree, so
// an unchanged fleet costs one ls-refs and no object writes. New trees and blobs go
// into a bare work dir (no checkout, no index) as one pack per push.
//
// The object bytes are built in git-objects.ts, the commit -> tree cache of the work
// dir is tree-cache.ts; every read of the work dir goes through core/git.ts.
import type { KeyObject } from 'node:crypto';
import { GitError } from '../core/errors.js';
import {
  ensureBareRepo,
  fetchAllBranches,
  fetchBranch,
  fetchedBranchHead,
  gitError,
  hasObject,
  listRemoteBranches,
  nodeGitDeps,
  readLocalCommit,
  readLocalTree,
  remoteBranchHead,
  sanitizeUrl,
  sourceTrailer,
  type FetchOptions,
  type GitAuth,
  type GitDeps,
} from '../core/git.js';
import { pushBranches, PUSH_BATCH_SIZE, storePack } from '../core/receive-pack.js';
import { signCommitPayload } from '../core/signing.js';
import {
  buildCommit,
  buildTree,
  DEFAULT_AUTHOR,
  tenantCommitMessage,
  treeEntries,
  type BuiltTree,
  type GitObjectBytes,
  type PublishFile,
} from './git-objects.js';
import { readTreeCache, restartClutteredCache, writeTreeCache } from './tree-cache.js';

// Still imported from here by renderer/commands/ and renderer/rollout/; new code imports git-objects.js.
export { buildTree } from './git-objects.js';
export type { PublishFile } from './git-objects.js';

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

/**
 * Commits every tenant whose branch does not hold its render yet and pushes them all:
 * plan (pure) -> open the work dir -> fetch unknown tips -> compare and commit -> push
 * (rebuilding on branches that moved) -> save the tree cache.
 */
export async function publishTenants(options: PublishOptions): Promise<PublishResult> {
  // Pure first: a bad render fails before anything touches git.
  const planned = planTenants(options.tenants, options.branchPrefix ?? 'tenants/');
  const run = await openWorkDir(options);
  await fetchUnknownTips(run, planned);
  const toPush = await compareAndCommit(run, planned);
  await pushChanged(run, planned, toPush);
  await saveTreeCache(run);
  return resultOf(run, planned);
}

/** A tenant with its branch and its tree, hashed in memory. */
interface PlannedTenant {
  slug: string;
  branch: string;
  tree: BuiltTree;
  renderAt: PublishTenant['renderAt'];
}

/** What one publish run knows and has built so far; every step below reads and adds to it. */
interface Run {
  url: string;
  auth: GitAuth | undefined;
  gitdir: string;
  deps: GitDeps;
  source: PublishOptions['source'];
  author: { name: string; email: string };
  signingKey: KeyObject | undefined;
  onProgress: PublishOptions['onProgress'];
  pushConcurrency: number;
  maxPushAttempts: number;
  pushBatchSize: number;
  /** isomorphic-git's object cache, shared by every read of this run. */
  cache: object;
  fetchOptions: FetchOptions;
  /** Remote branch -> head commit, from ls-refs (and fetches of tips that moved since). */
  remote: Map<string, string>;
  /**
   * Commit -> root tree. Commit ids never change meaning, so it is kept across runs:
   * an unchanged fleet then reads no git object at all.
   */
  treeCache: Map<string, string>;
  /** Trees, blobs and commits this run built, so the push packs them without reading them back. */
  inMemory: Map<string, GitObjectBytes>;
  /** Those not yet in the work dir: stored as one pack before each push. */
  unstored: GitObjectBytes[];
  /** Per pushed branch: the new commit, the remote head it builds on, the objects to send. */
  created: Map<string, { commit: string; parent: string | undefined; objects: string[] }>;
  /** Slugs whose branch already holds their render. */
  unchanged: Set<string>;
  /** Slugs whose new commit was pushed. */
  committed: Set<string>;
}

function planTenants(tenants: readonly PublishTenant[], branchPrefix: string): PlannedTenant[] {
  return tenants.map((t) => ({
    slug: t.slug,
    branch: `${branchPrefix}${t.slug}`,
    tree: buildTree(t.slug, t.files),
    renderAt: t.renderAt,
  }));
}

/** Readies the work dir (afresh when cluttered), lists the remote branches and reads the tree cache. */
async function openWorkDir(options: PublishOptions): Promise<Run> {
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
  await restartClutteredCache(gitdir);
  await ensureBareRepo(gitdir, deps);
  const remote = await listRemoteBranches(url, branchPrefix, auth, deps);
  const treeCache = await readTreeCache(gitdir);
  return {
    url,
    auth,
    gitdir,
    deps,
    source,
    author,
    signingKey: options.signingKey,
    onProgress: options.onProgress,
    pushConcurrency,
    maxPushAttempts,
    pushBatchSize,
    cache: {},
    fetchOptions: { depth: 1, ...(auth ? { auth } : {}) },
    remote,
    treeCache,
    inMemory: new Map(),
    unstored: [],
    created: new Map(),
    unchanged: new Set(),
    committed: new Set(),
  };
}

/** The root tree of a commit: from the tree cache, else the work dir; undefined when not held locally. */
async function treeOf(run: Run, commit: string): Promise<string | undefined> {
  const known = run.treeCache.get(commit);
  if (known) return known;
  const tree = (await readLocalCommit(run.gitdir, commit, run.deps, run.cache))?.tree;
  if (tree) run.treeCache.set(commit, tree);
  return tree;
}

/** treeOf a commit that must be local by now (just fetched). */
async function requireTree(run: Run, commit: string): Promise<string> {
  const tree = await treeOf(run, commit);
  if (!tree) throw new GitError(`read commit ${commit}`, run.gitdir, 'commit is missing after fetch');
  return tree;
}

/** Remote tips we know nothing about are fetched: one by one when few, in one fetch when many. */
async function fetchUnknownTips(run: Run, planned: readonly PlannedTenant[]): Promise<void> {
  const { gitdir, url, fetchOptions, deps, remote } = run;
  const unknown: string[] = [];
  for (const t of planned) {
    const head = remote.get(t.branch);
    if (head && !(await treeOf(run, head))) unknown.push(t.branch);
  }
  if (unknown.length > 8) {
    await fetchAllBranches(gitdir, url, fetchOptions, deps);
    for (const branch of unknown) {
      // A branch that moved since ls-refs was fetched at its new tip.
      if (!(await treeOf(run, remote.get(branch) as string))) remote.set(branch, await fetchedBranchHead(gitdir, branch, deps));
    }
  } else {
    for (const branch of unknown) remote.set(branch, await fetchBranch(gitdir, url, branch, fetchOptions, deps));
  }
}

/**
 * Compares each tenant's tree with its branch and commits those that differ (in memory),
 * on the branch head. Returns the tenants to push, in plan order.
 */
async function compareAndCommit(run: Run, planned: readonly PlannedTenant[]): Promise<PlannedTenant[]> {
  const toPush: PlannedTenant[] = [];
  let compared = 0;
  for (const t of planned) {
    run.onProgress?.({ phase: 'compare', done: compared++, total: planned.length, slug: t.slug });
    let head = run.remote.get(t.branch);
    if (head && (await holdsRender(run, t, head))) {
      run.unchanged.add(t.slug);
      continue;
    }
    // The parent must be local for the push; the tree cache may have spared us its fetch so far.
    if (head && !(await hasObject(run.gitdir, head, run.deps, run.cache))) {
      head = await fetchBranch(run.gitdir, run.url, t.branch, run.fetchOptions, run.deps);
      if (await holdsRender(run, t, head)) {
        run.unchanged.add(t.slug);
        continue;
      }
    }
    await commitTree(run, t, head);
    toPush.push(t);
  }
  run.onProgress?.({ phase: 'compare', done: planned.length, total: planned.length, slug: '' });
  return toPush;
}

/** Whether the branch head already holds this render (the same tree, or the same render under its own source). */
async function holdsRender(run: Run, t: PlannedTenant, head: string): Promise<boolean> {
  return (await requireTree(run, head)) === t.tree.oid || (await sameRenderAsBranch(run, t, head));
}

/** Same tree as the branch holds, once rendered under the source commit the branch names? */
async function sameRenderAsBranch(run: Run, t: PlannedTenant, head: string): Promise<boolean> {
  if (!t.renderAt) return false;
  const commit = await readLocalCommit(run.gitdir, head, run.deps, run.cache);
  if (!commit) return false;
  const branchSource = sourceTrailer(commit.message);
  if (!branchSource || branchSource === run.source.commit) return false;
  return buildTree(t.slug, t.renderAt({ repo: run.source.repo, commit: branchSource })).oid === (await requireTree(run, head));
}

/** Builds the tenant's commit on `parent` (none for a new branch) and notes what its push must send. */
async function commitTree(run: Run, t: PlannedTenant, parent: string | undefined): Promise<void> {
  const { signingKey } = run;
  try {
    for (const object of t.tree.objects) {
      if (run.inMemory.has(object.oid)) continue;
      run.inMemory.set(object.oid, object);
      run.unstored.push(object);
    }
    const commitObject = buildCommit({
      tree: t.tree.oid,
      parents: parent ? [parent] : [],
      author: { ...run.author, timestamp: Math.floor(Date.now() / 1000) },
      message: tenantCommitMessage(t.slug, run.source),
      ...(signingKey ? { sign: (payload: string) => signCommitPayload(payload, signingKey) } : {}),
    });
    const commit = commitObject.oid;
    run.inMemory.set(commit, commitObject);
    run.unstored.push(commitObject);
    run.treeCache.set(commit, t.tree.oid);
    run.created.set(t.branch, { commit, parent, objects: await objectsBeyondParent(run, t.tree, parent) });
  } catch (err) {
    throw gitError(`commit ${t.branch}`, run.gitdir, err);
  }
}

/**
 * Trees and blobs of `built` the parent's tree does not hold, walking down only where
 * the two differ: what the remote lacks for this commit, as the parent is on the remote.
 */
async function objectsBeyondParent(run: Run, built: BuiltTree, parent: string | undefined): Promise<string[]> {
  const byOid = new Map(built.objects.map((o) => [o.oid, o]));
  const out: string[] = [];
  const visit = async (oid: string, theirsOid: string | undefined): Promise<void> => {
    out.push(oid);
    const theirs = new Map<string, string>();
    // Not local (or not a tree): no entries, so the whole subtree is sent; the server keeps one copy.
    const theirEntries = theirsOid ? await readLocalTree(run.gitdir, theirsOid, run.deps, run.cache) : undefined;
    for (const e of theirEntries ?? []) theirs.set(`${e.type} ${e.path}`, e.oid);
    for (const entry of treeEntries((byOid.get(oid) as GitObjectBytes).content)) {
      const isTree = entry.mode === '40000';
      const old = theirs.get(`${isTree ? 'tree' : 'blob'} ${entry.name}`);
      if (old === entry.oid) continue;
      if (isTree) await visit(entry.oid, old);
      else out.push(entry.oid);
    }
  };
  const parentTree = parent ? await treeOf(run, parent) : undefined;
  if (parentTree === built.oid) return [];
  await visit(built.oid, parentTree);
  return out;
}

/**
 * Every changed branch in one receive-pack request (per batch); branches someone moved
 * meanwhile are rebuilt on their new heads and go up together in the next round.
 */
async function pushChanged(run: Run, planned: readonly PlannedTenant[], toPush: PlannedTenant[]): Promise<void> {
  const progress = { done: 0, total: toPush.length };
  let pending = toPush;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > run.maxPushAttempts) throw keptMoving(run, pending);
    const moved = await pushRound(run, pending, progress);
    const next = await rebuildOnNewHeads(run, moved);
    pending = planned.filter((t) => next.has(t));
  }
}

function keptMoving(run: Run, pending: readonly PlannedTenant[]): GitError {
  const names = pending.map((t) => t.branch);
  return new GitError(
    `push ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`,
    sanitizeUrl(run.url),
    `the branch kept moving; gave up after ${run.maxPushAttempts} attempts`,
  );
}

/**
 * Stores the new objects as one pack and pushes the pending branches. Returns those
 * someone moved meanwhile; any other refusal is a GitError.
 */
async function pushRound(run: Run, pending: readonly PlannedTenant[], progress: { done: number; total: number }): Promise<PlannedTenant[]> {
  await storePack(run.gitdir, run.unstored);
  run.unstored = [];
  const updates = pending.map((t) => {
    const { commit, parent, objects } = run.created.get(t.branch)!;
    return { branch: t.branch, commit, expected: parent ?? null, objects };
  });
  const results = await pushBranches(run.gitdir, run.url, updates, run.auth, run.deps, {
    batchSize: run.pushBatchSize,
    known: (oid) => run.inMemory.get(oid),
  });
  const moved: PlannedTenant[] = [];
  const refused: string[] = [];
  for (const t of pending) {
    const result = results.get(t.branch);
    if (result?.status === 'pushed') {
      run.committed.add(t.slug);
      run.onProgress?.({ phase: 'push', done: ++progress.done, total: progress.total, slug: t.slug });
    } else if (result?.status === 'rejected') moved.push(t);
    else refused.push(`${t.branch} (${result?.reason ?? 'no result'})`);
  }
  if (refused.length > 0) {
    throw new GitError('push', sanitizeUrl(run.url), `the server refused ${refused.join(', ')}`);
  }
  return moved;
}

/**
 * Someone else moved these branches: build on their commits, never force. Returns the
 * tenants committed anew; those whose new head already holds the render are unchanged.
 */
async function rebuildOnNewHeads(run: Run, moved: readonly PlannedTenant[]): Promise<Set<PlannedTenant>> {
  const next = new Set<PlannedTenant>();
  await forEachLimited(moved, run.pushConcurrency, async (t) => {
    const head = await remoteBranchHead(run.url, t.branch, run.auth, run.deps);
    const fetched = head ? await fetchBranch(run.gitdir, run.url, t.branch, run.fetchOptions, run.deps) : undefined;
    if (fetched && (await requireTree(run, fetched)) === t.tree.oid) {
      run.unchanged.add(t.slug);
      return;
    }
    await commitTree(run, t, fetched);
    next.add(t);
  });
  return next;
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

/** Keeps only the tips we may meet next time, so the cache stays the size of the fleet. */
async function saveTreeCache(run: Run): Promise<void> {
  const keep = new Map<string, string>();
  for (const head of run.remote.values()) {
    const tree = run.treeCache.get(head);
    if (tree) keep.set(head, tree);
  }
  for (const { commit } of run.created.values()) {
    const tree = run.treeCache.get(commit);
    if (tree) keep.set(commit, tree);
  }
  await writeTreeCache(run.gitdir, keep);
}

function resultOf(run: Run, planned: readonly PlannedTenant[]): PublishResult {
  const inOrder = (set: Set<string>) => planned.map((t) => t.slug).filter((slug) => set.has(slug));
  return { committed: inOrder(run.committed), unchanged: inOrder(run.unchanged), pushed: run.committed.size > 0 };
}
