// Where `flotilla status` reads from: tenant branch heads and commits from the fleet
// git repository (one fetch of every branch tip), and the agents' commit statuses
// from the forge when a token allows it.
import { GitError, SettingError } from '../core/errors.js';
import { fetchAllBranches, listRemoteBranches, readLocalCommit, readLocalFile, sourceTrailer, type GitAuth } from '../core/git.js';
import type { ForgeCommitStatus } from '../core/forge.js';
import { MANIFEST_PATH, parseManifest } from '../core/manifest.js';
import type { Env, ForgeRepo } from '../forge-settings.js';
import { remoteUrl } from '../repo.js';
import type { StatusReads, TenantCommitInfo } from './status.js';

export interface GitStatusReadsOptions {
  url: string;
  auth?: GitAuth;
  /** Bare repository the tenant heads are fetched into (depth 1). */
  gitdir: string;
  /** Where the statuses are read (GitHub, GHE, Gitea, Forgejo); without it (no token) they show as unavailable. */
  forge?: ForgeRepo;
  /** Why there is no `forge` (shown in place of the statuses). */
  statusesUnavailable?: string;
}

/** Reads from the fleet git repo and the forge's statuses API. */
export function gitStatusReads(opts: GitStatusReadsOptions): StatusReads {
  let fetched: Promise<void> | undefined;
  const listed = new Map<string, Promise<ForgeCommitStatus[]>>();
  const reads: StatusReads = {
    listBranches: (prefix) => listRemoteBranches(opts.url, prefix, opts.auth),
    async readTenantCommit(oid): Promise<TenantCommitInfo> {
      // One fetch of every branch tip serves every tenant.
      fetched ??= fetchAllBranches(opts.gitdir, opts.url, opts.auth ? { auth: opts.auth } : {});
      await fetched;
      const commit = await readLocalCommit(opts.gitdir, oid);
      if (!commit) throw new GitError('read', opts.gitdir, `tenant commit ${oid} is not in the repository just fetched`);
      const info: TenantCommitInfo = { source: sourceTrailer(commit.message) };
      const manifest = await readLocalFile(opts.gitdir, oid, MANIFEST_PATH);
      try {
        if (manifest !== undefined) info.imageTag = parseManifest(manifest).imageTag;
      } catch {
        // no readable manifest: the published tag is simply unknown
      }
      return info;
    },
  };
  const on = opts.forge;
  if (on) {
    reads.latestStatus = async (sha, context) => {
      // A tenant's status and its drift status come from one list call per commit.
      let statuses = listed.get(sha);
      if (!statuses) listed.set(sha, (statuses = on.forge.listStatuses({ ...on.repo, ref: sha })));
      return (await statuses).find((s) => s.context === context);
    };
  } else if (opts.statusesUnavailable) reads.statusesUnavailable = opts.statusesUnavailable;
  return reads;
}

/** `--fleet-url`, else FLOTILLA_FLEET_URL, else the origin remote of the checkout. */
export async function fleetUrl(given: string | undefined, env: Env, root: string): Promise<string> {
  const url = given ?? env.FLOTILLA_FLEET_URL ?? (await remoteUrl(root));
  if (!url) throw new SettingError('--fleet-url', 'give the fleet repository URL (or set FLOTILLA_FLEET_URL, or an origin remote)');
  return url;
}

