// `flotilla status [--json]`: per tenant the desired tag, the head of its branch
// (one ls-refs on the fleet repo) and its Flotilla-Source, and the latest
// `flotilla/<slug>` commit status. Exits non-zero when any tenant failed.
import * as nodeFs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import git from 'isomorphic-git';
import type { Command } from 'commander';
import { SettingError, TenantsFailedError } from '../core/errors.js';
import { fetchAllBranches, listRemoteBranches, sourceTrailer, type GitAuth } from '../core/git.js';
import { listStatuses, type GitHubClient, type RepoRef } from '../core/github.js';
import { MANIFEST_PATH, parseManifest } from '../core/manifest.js';
import { loadFleet } from '../fleet/fleet.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { collectFleetStatus, formatStatus, formatStatusJson, type StatusReads, type TenantCommitInfo } from '../status/status.js';
import { githubClientFromEnv, githubToken, resolveRepo, type Env } from './github-env.js';
import { writeFile } from 'node:fs/promises';
import { renderDashboardHtml } from '../status/dashboard.js';
import { effectiveWaves } from '../rollout/rollout.js';

export interface GitStatusReadsOptions {
  url: string;
  auth?: GitAuth;
  /** Bare repository the tenant heads are fetched into (depth 1). */
  gitdir: string;
  client: GitHubClient;
  repo: RepoRef;
}

/** Reads from the fleet git repo and the GitHub statuses API. */
export function gitStatusReads(opts: GitStatusReadsOptions): StatusReads {
  let fetched: Promise<void> | undefined;
  const listed = new Map<string, ReturnType<typeof listStatuses>>();
  const fs = nodeFs;
  return {
    listBranches: (prefix) => listRemoteBranches(opts.url, prefix, opts.auth),
    async readTenantCommit(oid): Promise<TenantCommitInfo> {
      // One fetch of every branch tip serves every tenant.
      fetched ??= fetchAllBranches(opts.gitdir, opts.url, opts.auth ? { auth: opts.auth } : {});
      await fetched;
      const { commit } = await git.readCommit({ fs, gitdir: opts.gitdir, oid });
      const info: TenantCommitInfo = { source: sourceTrailer(commit.message) };
      try {
        const { blob } = await git.readBlob({ fs, gitdir: opts.gitdir, oid, filepath: MANIFEST_PATH });
        info.imageTag = parseManifest(Buffer.from(blob).toString('utf8')).imageTag;
      } catch {
        // no readable manifest: the published tag is simply unknown
      }
      return info;
    },
    async latestStatus(sha, context) {
      // A tenant's status and its drift status come from one list call per commit.
      let statuses = listed.get(sha);
      if (!statuses) listed.set(sha, (statuses = listStatuses(opts.client, { ...opts.repo, ref: sha })));
      return (await statuses).find((s) => s.context === context);
    },
  };
}

async function fleetUrl(given: string | undefined, env: Env, root: string): Promise<string> {
  const url =
    given ??
    env.FLOTILLA_FLEET_URL ??
    ((await git.getConfig({ fs: nodeFs, dir: root, path: 'remote.origin.url' }).catch(() => undefined)) as string | undefined);
  if (!url) throw new SettingError('--fleet-url', 'give the fleet repository URL (or set FLOTILLA_FLEET_URL, or an origin remote)');
  return url;
}

interface StatusCliOptions {
  json?: boolean;
  html?: string;
  repo?: string;
  fleetUrl?: string;
}

export function registerStatus(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('show every tenant: desired tag, published commit, agent state and age; exit 1 when any failed')
    .option('--json', 'print JSON for scripts')
    .option('--html <file>', 'also write the fleet as one self-contained HTML page (failed tenants first, last rollout)')
    .option('--repo <owner/name>', 'GitHub repository holding the statuses (default: GITHUB_REPOSITORY or the origin URL)')
    .option('--fleet-url <url>', 'fleet git repository (default: FLOTILLA_FLEET_URL or the origin remote)')
    .action(async (opts: StatusCliOptions) => {
      const root = fleetRoot(program, io);
      const fleet = await loadFleet(root);
      const client = githubClientFromEnv(io.env);
      const repo = await resolveRepo(opts.repo, io.env, root);
      const url = await fleetUrl(opts.fleetUrl, io.env, root);
      const token = githubToken(io.env);
      const gitdir = await mkdtemp(join(tmpdir(), 'flotilla-status-'));
      let status;
      try {
        const readsOpts: GitStatusReadsOptions = { url, gitdir, client, repo };
        if (token) readsOpts.auth = { token };
        status = await collectFleetStatus(fleet, gitStatusReads(readsOpts));
      } finally {
        await rm(gitdir, { recursive: true, force: true });
      }
      const tty = (io as CliIo & { isTTY?: boolean }).isTTY ?? process.stdout.isTTY === true;
      io.stdout(opts.json ? formatStatusJson(status) : formatStatus(status, { tty }));
      if (opts.html) {
        await writeFile(resolve(io.cwd, opts.html), renderDashboardHtml(status, { generatedAt: new Date(), waves: effectiveWaves(fleet) }));
      }
      const failed = status.tenants.filter((t) => t.verdict === 'failed').map((t) => t.slug);
      if (failed.length > 0) throw new TenantsFailedError(failed);
    });
}
