// Git access both programs share, over isomorphic-git. fs and http come in as
// `deps` (defaulting to Node's, built in this one place) so tests can point them
// elsewhere. Every failure is a GitError whose URL and text are stripped of credentials.
import * as nodeFs from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import git, { Errors, type FsClient, type HttpClient } from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import { ApplyRefusedError, GitError } from './errors.js';
import { MAX_MANAGED_FILE_BYTES } from './manifest.js';
import { declaredObjectSize } from './object-size.js';
import { guardedHttp, parseTree, PackStop, type PackSeen } from './pack-guard.js';
import { headAsFetchedBranch } from './dangling-head.js';

export interface GitDeps {
  fs: FsClient;
  http: HttpClient;
}

export const nodeGitDeps: GitDeps = { fs: nodeFs, http: nodeHttp };

/** HTTP basic credentials; GitHub takes a token as the password with any user name. */
export interface GitAuth {
  token: string;
  /** Defaults to `x-access-token`. */
  username?: string;
}

/** One file of a commit's tree. */
export interface CommitFile {
  path: string;
  content: Buffer;
  /** 0o644 or 0o755. */
  mode: number;
}

export interface CommitFiles {
  files: CommitFile[];
  message: string;
  parents: string[];
  tree: string;
}

export const ZERO_OID = '0000000000000000000000000000000000000000';

/**
 * The URL without user name or password, safe for logs and error messages
 * (the idea of Flux's sanitized.go).
 */
export function sanitizeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    // Not a WHATWG URL (scp-like `user@host:path`): drop anything that looks like userinfo with a secret.
    return url.replace(/\/\/[^/@\s]*@/, '//').replace(/^[^@/\s]*:[^@/\s]*@/, '');
  }
}

/** Replaces every secret (token, URL password, the raw URL) in `text`. */
function redact(text: string, url: string, auth?: GitAuth): string {
  let out = text;
  const secrets: string[] = [];
  if (auth?.token) secrets.push(auth.token);
  try {
    const parsed = new URL(url);
    if (parsed.password) secrets.push(decodeURIComponent(parsed.password), parsed.password);
    if (parsed.username) secrets.push(decodeURIComponent(parsed.username), parsed.username);
  } catch {
    // not a URL: nothing more to hide than the raw string below
  }
  if (url !== sanitizeUrl(url)) out = out.split(url).join(sanitizeUrl(url));
  for (const secret of secrets.filter((s) => s.length > 0).sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('***');
  }
  return out;
}

export function gitError(operation: string, url: string, err: unknown, auth?: GitAuth): GitError {
  let raw = err instanceof Error ? err.message : String(err);
  if (err instanceof Errors.NotFoundError && /HEAD/.test(raw)) {
    raw += ' (the remote HEAD names a branch that does not exist; push the default branch first)';
  }
  // The cause is dropped on purpose: isomorphic-git errors can carry request headers.
  return new GitError(operation, sanitizeUrl(url), redact(raw, url, auth));
}

export function authHeaders(auth?: GitAuth): Record<string, string> {
  if (!auth) return {};
  const basic = Buffer.from(`${auth.username ?? 'x-access-token'}:${auth.token}`).toString('base64');
  // Sent up front: isomorphic-git would otherwise make an extra unauthenticated request to earn a 401.
  return { Authorization: `Basic ${basic}` };
}

export function branchRef(branch: string): string {
  return branch.startsWith('refs/') ? branch : `refs/heads/${branch}`;
}

/**
 * Commit ids of the remote branches whose names start with `prefix` (e.g. `tenants/`),
 * keyed by branch name without `refs/heads/`. One protocol v2 ls-refs, filtered on the server.
 */
export async function listRemoteBranches(
  url: string,
  prefix: string,
  auth?: GitAuth,
  deps: GitDeps = nodeGitDeps,
): Promise<Map<string, string>> {
  try {
    const refs = await git.listServerRefs({
      http: deps.http,
      url,
      protocolVersion: 2,
      prefix: `refs/heads/${prefix}`,
      headers: authHeaders(auth),
    });
    const branches = new Map<string, string>();
    for (const { ref, oid } of refs) {
      if (ref.startsWith('refs/heads/')) branches.set(ref.slice('refs/heads/'.length), oid);
    }
    return branches;
  } catch (err) {
    throw gitError('ls-refs', url, err, auth);
  }
}

/**
 * The commit a remote branch points at, or null when it does not exist.
 * Two small requests (v2 ls-refs with a prefix) whatever the number of branches.
 */
export async function remoteBranchHead(
  url: string,
  branch: string,
  auth?: GitAuth,
  deps: GitDeps = nodeGitDeps,
): Promise<string | null> {
  const ref = branchRef(branch);
  try {
    const refs = await git.listServerRefs({
      http: deps.http,
      url,
      protocolVersion: 2,
      prefix: ref,
      headers: authHeaders(auth),
    });
    // The prefix also matches longer names (tenants/a matches tenants/ab).
    return refs.find((r) => r.ref === ref)?.oid ?? null;
  } catch (err) {
    throw gitError('ls-refs', url, err, auth);
  }
}

const FETCH_REFSPEC = '+refs/heads/*:refs/remotes/origin/*';

/**
 * Makes `gitdir` a bare repository if it is not one yet. Only the fetch refspec of
 * `origin` is configured: the URL (which may hold a token) is passed per call, never stored.
 */
export async function ensureBareRepo(gitdir: string, deps: GitDeps = nodeGitDeps): Promise<void> {
  try {
    await git.init({ fs: deps.fs, gitdir, bare: true, defaultBranch: 'main' });
    if ((await git.getConfig({ fs: deps.fs, gitdir, path: 'remote.origin.fetch' })) !== FETCH_REFSPEC) {
      await git.setConfig({ fs: deps.fs, gitdir, path: 'remote.origin.fetch', value: FETCH_REFSPEC });
    }
  } catch (err) {
    throw gitError('init', gitdir, err);
  }
}

/** No tenant file may be larger (manifest.ts), so no object of a fetch needs to be. */
export const MAX_FETCH_OBJECT_BYTES = MAX_MANAGED_FILE_BYTES;
/** A whole fetch, compressed: far above any tenant tree, far below a host's memory. */
export const MAX_FETCH_PACK_BYTES = 64 * 1024 * 1024;

export interface FetchOptions {
  /** History depth; 1 (the default) fetches only the tip commit. */
  depth?: number;
  auth?: GitAuth;
  /** Refuse the fetch when one object declares more (default MAX_FETCH_OBJECT_BYTES). */
  maxObjectBytes?: number;
  /** Refuse the fetch when the pack grows past this (default MAX_FETCH_PACK_BYTES). */
  maxPackBytes?: number;
}

/**
 * A fetch refused for its size: nothing of it was stored, and the commit stays refused
 * (its bytes never change), while later commits are fetched as usual.
 */
export class FetchTooLargeError extends ApplyRefusedError {
  constructor(
    readonly commit: string,
    reason: string,
    readonly path?: string,
  ) {
    super(reason);
  }
}

/** Commits met in fetches that were not stored (refused, or read for their history only), by id. */
const SEEN_COMMITS_FILE = 'flotilla-seen-commits.json';
const SEEN_COMMITS_KEPT = 5000;

async function readSeenCommits(gitdir: string): Promise<Record<string, string[]>> {
  try {
    return JSON.parse(await readFile(join(gitdir, SEEN_COMMITS_FILE), 'utf8')) as Record<string, string[]>;
  } catch {
    return {};
  }
}

/** Keeps the parents of every commit a guard saw, so ancestry can be told without fetching them again. */
async function rememberCommits(gitdir: string, seen: PackSeen): Promise<void> {
  if (seen.commits.size === 0) return;
  const known = await readSeenCommits(gitdir);
  for (const [oid, commit] of seen.commits) {
    delete known[oid];
    known[oid] = commit.parents;
  }
  const ids = Object.keys(known);
  for (const oid of ids.slice(0, Math.max(0, ids.length - SEEN_COMMITS_KEPT))) delete known[oid];
  await writeFile(join(gitdir, SEEN_COMMITS_FILE), JSON.stringify(known));
}

/**
 * isomorphic-git writes the shallow list and the remote-tracking ref before it reads the
 * pack. When the pack is then refused or cut, those would name a commit the repository
 * lacks, and the next fetch would tell the server it has it: they are put back.
 */
async function fetchRecord(gitdir: string, branch: string): Promise<() => Promise<void>> {
  const files = [join(gitdir, 'shallow'), join(gitdir, 'refs', 'remotes', 'origin', ...branch.replace(/^refs\/heads\//, '').split('/'))];
  await dropMissing(gitdir, files[0]!, files[1]!);
  const before = await Promise.all(files.map((f) => readFile(f).catch(() => undefined)));
  return async () => {
    for (const [i, file] of files.entries()) {
      const content = before[i];
      if (content === undefined) await rm(file, { force: true });
      else {
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, content);
      }
    }
  };
}

/**
 * Earlier versions left a refused commit in the shallow list and the remote ref (the
 * pack never stored): a host wedged that way is repaired before its next fetch.
 */
async function dropMissing(gitdir: string, shallowFile: string, refFile: string): Promise<void> {
  const listed = (await readFile(shallowFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const kept: string[] = [];
  for (const oid of listed) if (await hasObject(gitdir, oid)) kept.push(oid);
  if (kept.length < listed.length) {
    if (kept.length === 0) await rm(shallowFile, { force: true });
    else await writeFile(shallowFile, `${kept.join('\n')}\n`);
  }
  const ref = (await readFile(refFile, 'utf8').catch(() => '')).trim();
  if (/^[0-9a-f]{40}$/.test(ref) && !(await hasObject(gitdir, ref))) await rm(refFile, { force: true });
}

/** Every blob of the tree `root` with its path (trees from the refused pack, else the local repository). */
async function blobsOf(gitdir: string, seen: PackSeen, root: string, deps: GitDeps): Promise<Array<{ path: string; oid: string }>> {
  const blobs: Array<{ path: string; oid: string }> = [];
  const queue: Array<[string, string]> = [[root, '']];
  for (let step = 0; step < 10_000 && queue.length > 0; step++) {
    const [tree, prefix] = queue.shift()!;
    const raw = seen.trees.get(tree);
    let entries: Array<{ mode: string; name: string; oid: string }>;
    if (raw) entries = parseTree(raw);
    else {
      try {
        entries = (await git.readTree({ fs: deps.fs, gitdir, oid: tree })).tree.map((e) => ({ mode: e.mode, name: e.path, oid: e.oid }));
      } catch {
        continue;
      }
    }
    for (const e of entries) {
      if (e.mode === '40000' || e.mode === '040000') queue.push([e.oid, `${prefix}${e.name}/`]);
      else if (e.mode !== '160000') blobs.push({ path: prefix + e.name, oid: e.oid });
    }
  }
  return blobs;
}

/**
 * The refusal, naming the file when it can be told without inflating it: the blobs of the
 * commit that neither arrived whole before the refusal nor are held already.
 */
async function describeRefusal(gitdir: string, seen: PackSeen, stop: PackStop, limit: number, deps: GitDeps): Promise<FetchTooLargeError> {
  const commit = seen.wants[seen.wants.length - 1] ?? 'the commit';
  const refusal = (text: string, path?: string) => new FetchTooLargeError(commit, `${commit.slice(0, 12)} holds ${text}; not fetched`, path);
  const root = seen.commits.get(commit)?.tree;
  if (stop.reason === 'pack-too-large' || stop.object?.type !== 'blob' || !root) return refusal(stop.message);
  const candidates: string[] = [];
  for (const blob of await blobsOf(gitdir, seen, root, deps)) {
    if (seen.blobs.has(blob.oid) || (await hasObject(gitdir, blob.oid, deps))) continue;
    candidates.push(blob.path);
  }
  const size = `${stop.object.size} bytes, over the ${limit}-byte limit`;
  if (candidates.length === 1) return refusal(`${candidates[0]} (${size})`, candidates[0]);
  if (candidates.length === 0) return refusal(stop.message);
  const names = candidates.slice(0, 3).join(', ') + (candidates.length > 3 ? ', …' : '');
  return refusal(`a file of ${size} (one of ${names})`);
}

/**
 * Fetches one branch into the bare repository `gitdir` (created when missing)
 * and returns the fetched commit id. The branch is kept as `refs/remotes/origin/<branch>`.
 * Objects over `maxObjectBytes` are refused from their pack header, before they are
 * inflated (FetchTooLargeError); a refused or failed fetch leaves the repository as it was.
 */
export async function fetchBranch(
  gitdir: string,
  url: string,
  branch: string,
  options: FetchOptions = {},
  deps: GitDeps = nodeGitDeps,
): Promise<string> {
  await ensureBareRepo(gitdir, deps);
  const restore = await fetchRecord(gitdir, branch);
  const maxObjectBytes = options.maxObjectBytes ?? MAX_FETCH_OBJECT_BYTES;
  const guard = guardedHttp(headAsFetchedBranch(deps.http, branch), { maxObjectBytes, maxPackBytes: options.maxPackBytes ?? MAX_FETCH_PACK_BYTES });
  try {
    const result = await fetchOneBranch(gitdir, url, branch, guard.http, options.depth ?? 1, options.auth, deps);
    if (!result.fetchHead) throw new Error(`branch ${branch} not found`);
    return result.fetchHead;
  } catch (err) {
    await restore();
    await rememberCommits(gitdir, guard.seen).catch(() => undefined);
    const stop = guard.seen.stop;
    if (stop && stop.reason !== 'corrupt') throw await describeRefusal(gitdir, guard.seen, stop, maxObjectBytes, deps);
    throw gitError(`fetch ${branch}`, url, err, options.auth);
  }
}

/** One branch, no tags, to `depth`, through `http` (a guarded client). */
function fetchOneBranch(gitdir: string, url: string, branch: string, http: GitDeps['http'], depth: number, auth: GitAuth | undefined, deps: GitDeps) {
  return git.fetch({ fs: deps.fs, http, gitdir, url, ref: branch, singleBranch: true, tags: false, depth, headers: authHeaders(auth) });
}

/**
 * Learns the history of a branch to `depth` commits without storing anything: the
 * response is read up to its first tree and closed, so no blob (whatever its size) is
 * downloaded. isAncestor then answers from the commits met.
 */
export async function fetchHistory(
  gitdir: string,
  url: string,
  branch: string,
  options: Pick<FetchOptions, 'depth' | 'auth'> = {},
  deps: GitDeps = nodeGitDeps,
): Promise<void> {
  await ensureBareRepo(gitdir, deps);
  const restore = await fetchRecord(gitdir, branch);
  const guard = guardedHttp(headAsFetchedBranch(deps.http, branch), { maxObjectBytes: MAX_FETCH_OBJECT_BYTES, maxPackBytes: MAX_FETCH_PACK_BYTES, commitsOnly: true });
  try {
    await fetchOneBranch(gitdir, url, branch, guard.http, options.depth ?? 2, options.auth, deps);
  } catch (err) {
    await restore();
    if (guard.seen.stop?.reason !== 'commits-read') throw gitError(`fetch history of ${branch}`, url, err, options.auth);
  } finally {
    await rememberCommits(gitdir, guard.seen);
  }
}

/**
 * Fetches every branch of the remote (tip commits only by default) in one round trip;
 * cheaper than one fetch per branch when many are missing locally.
 */
export async function fetchAllBranches(
  gitdir: string,
  url: string,
  options: FetchOptions = {},
  deps: GitDeps = nodeGitDeps,
): Promise<void> {
  await ensureBareRepo(gitdir, deps);
  try {
    await git.fetch({
      fs: deps.fs,
      http: headAsFetchedBranch(deps.http),
      gitdir,
      url,
      singleBranch: false,
      tags: false,
      depth: options.depth ?? 1,
      headers: authHeaders(options.auth),
    });
  } catch (err) {
    throw gitError('fetch', url, err, options.auth);
  }
}

/** Whether the object is in the local repository. */
export async function hasObject(gitdir: string, oid: string, deps: GitDeps = nodeGitDeps, cache: object = {}) {
  try {
    await git.readObject({ fs: deps.fs, gitdir, oid, format: 'deflated', cache });
    return true;
  } catch (err) {
    if (err instanceof Errors.NotFoundError) return false;
    throw gitError('read', gitdir, err);
  }
}

function fileMode(mode: string, path: string, gitdir: string): number {
  if (mode === '100644') return 0o644;
  if (mode === '100755') return 0o755;
  const kind = mode === '120000' ? 'symlink' : mode === '160000' ? 'submodule' : `mode ${mode}`;
  throw new GitError('read', gitdir, `${path} is a ${kind}; tenant trees hold regular files only`);
}

/** Every file of a commit's tree (sorted by path), its message and parents. */
export async function readCommitFiles(
  gitdir: string,
  oid: string,
  deps: GitDeps = nodeGitDeps,
): Promise<CommitFiles> {
  const cache = {};
  let commit;
  try {
    commit = await git.readCommit({ fs: deps.fs, gitdir, oid, cache });
  } catch (err) {
    throw gitError(`read commit ${oid}`, gitdir, err);
  }
  const files: CommitFile[] = [];
  const walk = async (treeOid: string, prefix: string): Promise<void> => {
    let tree;
    try {
      tree = await git.readTree({ fs: deps.fs, gitdir, oid: treeOid, cache });
    } catch (err) {
      throw gitError(`read tree ${prefix || '/'}`, gitdir, err);
    }
    for (const entry of tree.tree) {
      const path = prefix + entry.path;
      if (entry.type === 'tree') {
        await walk(entry.oid, `${path}/`);
        continue;
      }
      const mode = fileMode(entry.mode, path, gitdir);
      // By its declared size first: reading it whole is what would exhaust memory.
      const size = await declaredObjectSize(gitdir, entry.oid).catch(() => undefined);
      if (size !== undefined && size > MAX_FETCH_OBJECT_BYTES) {
        throw new FetchTooLargeError(oid, `${oid.slice(0, 12)} holds ${path} (${size} bytes, over the ${MAX_FETCH_OBJECT_BYTES}-byte limit)`, path);
      }
      try {
        const { blob } = await git.readBlob({ fs: deps.fs, gitdir, oid: entry.oid, cache });
        files.push({ path, content: Buffer.from(blob), mode });
      } catch (err) {
        throw gitError(`read ${path}`, gitdir, err);
      }
    }
  };
  await walk(commit.commit.tree, '');
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, message: commit.commit.message, parents: commit.commit.parent, tree: commit.commit.tree };
}

/**
 * Whether `ancestor` is `descendant` or one of its ancestors, walking local history only.
 * Throws a GitError when the local history is too shallow to tell; fetch deeper and ask again.
 */
export async function isAncestor(
  gitdir: string,
  ancestor: string,
  descendant: string,
  deps: GitDeps = nodeGitDeps,
): Promise<boolean> {
  if (ancestor === descendant) return true;
  const cache = {};
  const seenElsewhere = await readSeenCommits(gitdir);
  const queue = [descendant];
  const seen = new Set(queue);
  let incomplete = false;
  while (queue.length > 0) {
    const oid = queue.shift() as string;
    let parents: string[];
    try {
      parents = (await git.readCommit({ fs: deps.fs, gitdir, oid, cache })).commit.parent;
    } catch (err) {
      if (!(err instanceof Errors.NotFoundError)) throw gitError('is-ancestor', gitdir, err);
      const known = seenElsewhere[oid];
      if (!known) {
        incomplete = true;
        continue;
      }
      parents = known;
    }
    for (const parent of parents) {
      if (parent === ancestor) return true;
      if (!seen.has(parent)) {
        seen.add(parent);
        queue.push(parent);
      }
    }
  }
  if (incomplete) {
    throw new GitError(
      'is-ancestor',
      gitdir,
      `history of ${descendant} is incomplete locally; cannot tell whether ${ancestor} is an ancestor`,
    );
  }
  return false;
}

/**
 * Pushes local `refs/heads/<branch>` to the same remote branch, never forced.
 * Returns 'rejected' when the remote branch moved (not a fast-forward any more).
 */
export async function pushBranch(
  gitdir: string,
  url: string,
  branch: string,
  auth?: GitAuth,
  deps: GitDeps = nodeGitDeps,
): Promise<'pushed' | 'rejected'> {
  const ref = branchRef(branch);
  try {
    await git.push({
      fs: deps.fs,
      http: deps.http,
      gitdir,
      url,
      ref,
      remoteRef: ref,
      force: false,
      headers: authHeaders(auth),
    });
    return 'pushed';
  } catch (err) {
    if (err instanceof Errors.PushRejectedError) return 'rejected';
    // The server unpacked our objects but refused the ref update: the branch moved
    // between discovery and push (e.g. "failed to update ref", "fetch first").
    if (err instanceof Errors.GitPushError && err.data.result.ok) return 'rejected';
    throw gitError(`push ${branch}`, url, err, auth);
  }
}

/** The `Flotilla-Source: <sha>` trailer of a tenant commit message, or null. */
export function sourceTrailer(message: string): string | null {
  const paragraphs = message.trimEnd().split(/\n\s*\n/);
  const last = paragraphs[paragraphs.length - 1] ?? '';
  const match = /^Flotilla-Source:\s*([0-9a-f]{7,64})\s*$/im.exec(last);
  return match?.[1] ?? null;
}

/**
 * An HttpClient that gives up when the server sends nothing for `timeoutMs`: no
 * response headers, or no next chunk of the body (a server that stalls mid-pack).
 * The socket is aborted, so a hung git host cannot hold the caller forever.
 */
export function httpWithTimeout(inner: HttpClient, timeoutMs: number): HttpClient {
  return {
    async request(req) {
      const controller = new AbortController();
      const signal = req.signal ? AbortSignal.any([req.signal, controller.signal]) : controller.signal;
      const within = <T>(step: Promise<T>): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          const timer = setTimeout(() => {
            controller.abort();
            reject(new Error(`no answer from the server within ${timeoutMs / 1000} s`));
          }, timeoutMs);
          step.then(
            (v) => (clearTimeout(timer), resolve(v)),
            (e: unknown) => (clearTimeout(timer), reject(e)),
          );
        });
      const res = await within(inner.request({ ...req, signal }));
      const body = res.body;
      if (!body) return res;
      const chunks = body[Symbol.asyncIterator]();
      const timed: AsyncIterableIterator<Uint8Array> = {
        next: () => within(chunks.next()),
        return: async (value?: unknown) => {
          controller.abort();
          return chunks.return ? chunks.return(value) : { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return timed;
        },
      };
      return { ...res, body: timed };
    },
  };
}

/** Node's fs and http with every request bounded by `timeoutMs` of silence. */
export function nodeGitDepsWithTimeout(timeoutMs: number): GitDeps {
  return { fs: nodeFs, http: httpWithTimeout(nodeHttp, timeoutMs) };
}

/**
 * A commit object's bytes as git stores them (headers, gpgsig included, and message), for
 * signature checks: the signature covers these bytes, whatever the commit's `encoding` says.
 */
export async function readRawCommit(gitdir: string, oid: string, deps: GitDeps = nodeGitDeps): Promise<Buffer> {
  try {
    const { type, object } = await git.readObject({ fs: deps.fs, gitdir, oid, format: 'content' });
    if (type !== 'commit') throw new Error(`${oid} is a ${type}, not a commit`);
    return Buffer.from(object as Uint8Array);
  } catch (err) {
    throw gitError(`read commit ${oid}`, gitdir, err);
  }
}

/** A commit of the local repository, as publish needs it. */
export interface LocalCommit {
  /** Root tree id. */
  tree: string;
  parents: string[];
  message: string;
}

/**
 * A commit of the local repository, or undefined when it is not held there (not
 * fetched yet, or dropped with a cache). Any other failure is a GitError. `cache` is
 * isomorphic-git's object cache: one object passed through a run reads each pack index once.
 */
export async function readLocalCommit(
  gitdir: string,
  oid: string,
  deps: GitDeps = nodeGitDeps,
  cache: object = {},
): Promise<LocalCommit | undefined> {
  try {
    const { commit } = await git.readCommit({ fs: deps.fs, gitdir, oid, cache });
    return { tree: commit.tree, parents: commit.parent, message: commit.message };
  } catch (err) {
    if (err instanceof Errors.NotFoundError) return undefined;
    throw gitError(`read commit ${oid}`, gitdir, err);
  }
}

/** The UTF-8 text of `path` in commit `oid` of the local repository, or undefined when it has none. */
export async function readLocalFile(gitdir: string, oid: string, path: string, deps: GitDeps = nodeGitDeps): Promise<string | undefined> {
  try {
    const { blob } = await git.readBlob({ fs: deps.fs, gitdir, oid, filepath: path });
    return Buffer.from(blob).toString('utf8');
  } catch {
    return undefined;
  }
}

/** One entry of a tree object: `type` is 'tree' for a folder, 'blob' for a file. */
export interface LocalTreeEntry {
  mode: string;
  path: string;
  oid: string;
  type: 'blob' | 'tree' | 'commit';
}

/**
 * The entries of a tree of the local repository, or undefined when no tree of that id
 * is held there (missing, or another kind of object). Any other failure is thrown as
 * isomorphic-git raised it: the caller names the operation it was part of.
 */
export async function readLocalTree(
  gitdir: string,
  oid: string,
  deps: GitDeps = nodeGitDeps,
  cache: object = {},
): Promise<LocalTreeEntry[] | undefined> {
  try {
    return (await git.readTree({ fs: deps.fs, gitdir, oid, cache })).tree;
  } catch (err) {
    if (err instanceof Errors.NotFoundError || err instanceof Errors.ObjectTypeError) return undefined;
    throw err;
  }
}

/**
 * The commit the last fetch left for `branch` in `gitdir` (its remote-tracking ref
 * `refs/remotes/origin/<branch>`, as FETCH_REFSPEC maps it). A missing ref is thrown as
 * isomorphic-git raised it.
 */
export async function fetchedBranchHead(gitdir: string, branch: string, deps: GitDeps = nodeGitDeps): Promise<string> {
  return git.resolveRef({ fs: deps.fs, gitdir, ref: `refs/remotes/origin/${branch}` });
}
