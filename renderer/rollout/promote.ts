// One step of a progressive rollout: reads where every tenant is (tenant branch heads,
// the agents' `flotilla/<slug>` statuses on the source commit their branch names), asks
// rollout.ts what comes next, publishes that wave, says so in a `flotilla/rollout`
// status on the source commit, and on a halt opens the rollback PR for the failed
// tenants (once per halt). `flotilla promote` runs it with the forge writes,
// `flotilla publish` without. The forge is GitHub, GHE, Gitea or Forgejo (core/forge.ts).
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { GitError } from '../core/errors.js';
import { ensureBareRepo, fetchAllBranches, hasObject, listRemoteBranches, nodeGitDeps, readLocalCommit, sanitizeUrl, sourceTrailer, type GitAuth } from '../core/git.js';
import type { Forge } from '../core/forge.js';
import { truncateDescription, type CommitStatus, type RepoRef } from '../core/github.js';
import { loadFleet, type Fleet } from '../fleet/fleet.js';
import { buildTree, publishTenants, type PublishFile, type PublishResult } from '../publish/publish.js';
import { loadTemplates, renderFleet, renderTenant, type RenderSource } from '../render/render.js';
import { parentOf, resolveSource } from '../repo.js';
import { decideRollout, effectiveWaves, formatRollout, ROLLOUT_CONTEXT_SUFFIX, rolloutStatus, type RolloutReport, type TenantRolloutInput } from './rollout.js';
import { openRollbackPullRequest, rollbackRepo, type RollbackPullRequest } from './rollback-branch.js';

/** The forge and the repository holding the statuses and pull requests. */
export interface RolloutForge {
  forge: Forge;
  repo: RepoRef;
}

export interface RolloutStepOptions {
  /** Checkout of the fleet source repo (fleet/, templates/, and its history for rollbacks). */
  root: string;
  /** Fleet git repository holding the tenant branches. */
  repoUrl: string;
  token?: string;
  /** Bare repository kept between runs (shared with publish). */
  cacheDir: string;
  source?: { repo?: string; commit?: string };
  /** Statuses are read from here; without it no tenant has reported, so only a first wave can go. */
  forge?: RolloutForge;
  /** Post `flotilla/rollout` and open rollback PRs on the forge (promote); publish only reads. */
  writeForge?: boolean;
  /** Open the rollback PR on a halt (default: the fleet's `autoRollback`, else true). */
  autoRollback?: boolean;
  /** Decide and report, publish nothing. */
  dryRun?: boolean;
  /** Signs the tenant commits (agents configured with FLOTILLA_TRUSTED_KEYS apply only signed ones). */
  signingKey?: KeyObject;
  now?: () => Date;
}

export interface RolloutStepResult {
  /** What was true when the step started. */
  before: RolloutReport;
  /** After publishing (the same as `before` when nothing was published). */
  report: RolloutReport;
  published?: PublishResult & { wave: string };
  rollback?: { branch: string; pullRequest?: RollbackPullRequest };
  /** The `flotilla/rollout` status, when one was posted this step. */
  posted?: CommitStatus;
}

interface TenantHead {
  commit: string;
  tree: string;
  source: string | null;
}

/** Every tenant branch head with its tree and Flotilla-Source; one ls-refs, one fetch when any head is new. */
async function readTenantHeads(fleet: Fleet, url: string, gitdir: string, auth?: GitAuth): Promise<Map<string, TenantHead>> {
  const prefix = fleet.defaults.tenantBranchPrefix;
  const heads = await listRemoteBranches(url, prefix, auth);
  await ensureBareRepo(gitdir);
  const cache = {};
  const missing = [];
  for (const oid of heads.values()) if (!(await hasObject(gitdir, oid, nodeGitDeps, cache))) missing.push(oid);
  if (missing.length > 0) await fetchAllBranches(gitdir, url, auth ? { auth } : {});
  const out = new Map<string, TenantHead>();
  for (const t of fleet.tenants) {
    const oid = heads.get(`${prefix}${t.slug}`);
    if (!oid) continue;
    const commit = await readLocalCommit(gitdir, oid, nodeGitDeps, cache);
    if (!commit) throw new GitError('read', gitdir, `tenant commit ${oid} is not in the repository just fetched`);
    out.set(t.slug, { commit: oid, tree: commit.tree, source: sourceTrailer(commit.message) });
  }
  return out;
}

/** Latest status per context on each commit, one combined-status call per distinct commit. */
async function readStatuses(on: RolloutForge, shas: Iterable<string>): Promise<Map<string, Map<string, CommitStatus>>> {
  const out = new Map<string, Map<string, CommitStatus>>();
  for (const sha of new Set(shas)) {
    const combined = await on.forge.getCombinedStatus({ ...on.repo, ref: sha });
    out.set(sha, new Map(combined.statuses.map((s) => [s.context, s])));
  }
  return out;
}

function behindOf(files: PublishFile[], head: TenantHead | undefined, slug: string, source: RenderSource, renderAt: (at: RenderSource) => PublishFile[]): boolean {
  if (!head) return true;
  if (buildTree(slug, files).oid === head.tree) return false;
  // The same render under the source the branch names: this commit does not change the tenant.
  if (head.source && head.source !== source.commit && buildTree(slug, renderAt({ repo: source.repo, commit: head.source })).oid === head.tree) return false;
  return true;
}

function rolloutContext(fleet: Fleet): string {
  return `${fleet.defaults.statusContextPrefix}${ROLLOUT_CONTEXT_SUFFIX}`;
}

export async function rolloutStep(opts: RolloutStepOptions): Promise<RolloutStepResult> {
  const [fleet, templates, source] = await Promise.all([
    loadFleet(opts.root),
    loadTemplates(join(opts.root, 'templates')),
    resolveSource(opts.root, opts.source ?? {}),
  ]);
  source.repo = sanitizeUrl(source.repo);
  const now = opts.now ?? (() => new Date());
  const auth = opts.token ? { token: opts.token } : undefined;
  const rendered = new Map(renderFleet(fleet, templates, source).map((t) => [t.slug, t]));
  const renderAt = (slug: string) => (at: RenderSource) => renderTenant(fleet, fleet.tenants.find((t) => t.slug === slug)!, templates, at).files;

  const heads = await readTenantHeads(fleet, opts.repoUrl, opts.cacheDir, auth);
  const statusShas = [...heads.values()].map((h) => h.source).filter((s): s is string => s !== null);
  const statuses = opts.forge ? await readStatuses(opts.forge, [...statusShas, source.commit]) : new Map<string, Map<string, CommitStatus>>();
  const tenants: TenantRolloutInput[] = fleet.tenants.map((t) => {
    const head = heads.get(t.slug);
    const input: TenantRolloutInput = {
      slug: t.slug,
      paused: t.paused,
      behind: behindOf(rendered.get(t.slug)!.files, head, t.slug, source, renderAt(t.slug)),
      branchSource: head?.source ?? null,
    };
    const status = head?.source ? statuses.get(head.source)?.get(`${fleet.defaults.statusContextPrefix}${t.slug}`) : undefined;
    if (status) input.status = { state: status.state, at: status.createdAt, description: status.description };
    return input;
  });
  const waves = effectiveWaves(fleet);
  const before = decideRollout({ waves, tenants, source: source.commit, now: now() });
  const result: RolloutStepResult = { before, report: before };

  const d = before.decision;
  if (d.kind === 'publish' && !opts.dryRun) {
    const published = await publishTenants({
      repoUrl: opts.repoUrl,
      ...(auth ? { auth } : {}),
      workDir: opts.cacheDir,
      tenants: d.tenants.map((slug) => ({ slug, files: rendered.get(slug)!.files, renderAt: renderAt(slug) })),
      source,
      branchPrefix: fleet.defaults.tenantBranchPrefix,
      ...(opts.signingKey ? { signingKey: opts.signingKey } : {}),
    });
    result.published = { ...published, wave: d.wave };
    const now2 = new Set(d.tenants);
    const after = tenants.map((t) => (now2.has(t.slug) ? { slug: t.slug, paused: t.paused, behind: false, branchSource: source.commit } : t));
    result.report = decideRollout({ waves, tenants: after, source: source.commit, now: now() });
  }

  if (opts.forge && opts.writeForge && !opts.dryRun) {
    const context = rolloutContext(fleet);
    const previous = statuses.get(source.commit)?.get(context);
    let targetUrl: string | undefined;
    const halted = result.report.decision;
    if (halted.kind === 'halted') {
      // One rollback PR per halt: the status already links it when an earlier step opened it.
      if (previous?.state === 'failure' && previous.targetUrl) targetUrl = previous.targetUrl;
      else if (opts.autoRollback ?? fleet.autoRollback ?? true) {
        const rollback = await openHaltRollback(opts, tenants, halted, source.commit, auth);
        if (rollback) {
          result.rollback = rollback;
          targetUrl = rollback.pullRequest?.url;
        }
      }
    }
    const want = rolloutStatus(result.report);
    if (!previous || previous.state !== want.state || previous.description !== truncateDescription(want.description) || (targetUrl ?? null) !== previous.targetUrl) {
      result.posted = await opts.forge.forge.createCommitStatus({
        ...opts.forge.repo,
        sha: source.commit,
        context,
        state: want.state,
        description: want.description,
        ...(targetUrl ? { targetUrl } : {}),
      });
    }
  }
  return result;
}

/**
 * The rollback PR for the tenants that failed: their settings as of the commit before
 * the one their branch was rendered from. Grouped by that commit (usually one group).
 */
async function openHaltRollback(
  opts: RolloutStepOptions,
  tenants: TenantRolloutInput[],
  halted: { wave: string; failed: Array<{ slug: string }>; reason: string },
  source: string,
  auth: GitAuth | undefined,
): Promise<{ branch: string; pullRequest?: RollbackPullRequest } | undefined> {
  const failedSource = new Map<string, string[]>();
  for (const f of halted.failed) {
    const from = tenants.find((t) => t.slug === f.slug)?.branchSource;
    if (!from) continue;
    failedSource.set(from, [...(failedSource.get(from) ?? []), f.slug]);
  }
  const [first] = failedSource;
  if (!first) return undefined;
  const [changed, slugs] = first;
  const to = await parentOf(opts.root, changed);
  const rolled = await rollbackRepo({
    root: opts.root,
    slugs,
    to,
    from: source,
    ...(auth ? { auth } : {}),
    reason: `The rollout of ${source.slice(0, 12)} halted (${halted.reason}); \`flotilla promote\` opened this rollback.`,
  });
  if (rolled.plan.edits.size === 0) return undefined;
  const pullRequest = await openRollbackPullRequest(opts.forge!.forge, {
    ...opts.forge!.repo,
    branch: rolled.branch,
    title: rolled.title,
    body: rolled.body,
  });
  return { branch: rolled.branch, pullRequest };
}

/** Prints what a step did; shared by promote and publish. */
export function formatStep(step: RolloutStepResult): string {
  let out = '';
  if (step.published) {
    for (const slug of step.published.committed) out += `${slug}: committed (wave ${step.published.wave})\n`;
  }
  out += formatRollout(step.report);
  if (step.rollback) {
    const pr = step.rollback.pullRequest;
    out += `rollback: ${step.rollback.branch}${pr ? ` ${pr.existed ? 'already open as' : 'opened as'} #${pr.number} ${pr.url}` : ''}\n`;
  }
  return out;
}

