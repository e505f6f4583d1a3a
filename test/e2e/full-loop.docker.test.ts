// The whole Flotilla loop on real parts, the way a fleet lives through releases:
// a fleet repo (test/e2e/fixture) on the loopback git server, the `flotilla` CLI
// (bump, plan, publish, status), one agent per tenant (`flotilla-agent once`, in
// process) driving Debian's docker-compose against the run's private dockerd and
// loopback registry, and the GitHub stand-in (checked against GitHub's OpenAPI
// description) receiving the commit statuses.
//
// The steps run in order on one fleet, each starting where the previous one left it:
// initial rollout -> bump one tenant -> a bad tag -> its revert -> `flotilla status`.
// At the end the file prints how long each tenant took from merge to converged.
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createComposeRunner } from '../../agent/compose.js';
import { runAgentCli } from '../../agent/main.js';
import { setYamlScalar } from '../../renderer/fleet/bump.js';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { runCli } from '../../renderer/main.js';
import type { PlanReport } from '../../renderer/plan/plan.js';
import { agentSettings } from '../support/agent-settings.js';
import { startGitHubStandIn, type GitHubStandIn } from '../support/github-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { docker } from '../support/images.js';

const execFileAsync = promisify(execFile);

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const FIXTURE = join(import.meta.dirname, 'fixture');
const GITHUB_REPO = 'acme/fleet';
const TENANTS = ['alpha', 'bravo', 'carol'] as const;
type Slug = (typeof TENANTS)[number];
/** The fleet's defaults.registry: the run's loopback registry plus the test image's namespace. */
const FLEET_REGISTRY = `${ctx.registry}/flotilla-test`;

let git: GitServer;
let github: GitHubStandIn;
let work: string;
let repoUrl: string;
/** The maintainer's checkout of the fleet repo (origin = the loopback git server). */
let src: string;
/** Everything the agents and the CLI printed, for the secret checks. */
const output: string[] = [];

// ---- the fleet repo and the CLI ---------------------------------------------

async function gitIn(dir: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', ['-C', dir, ...args], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Maintainer',
      GIT_AUTHOR_EMAIL: 'maintainer@fleet.test',
      GIT_COMMITTER_NAME: 'Maintainer',
      GIT_COMMITTER_EMAIL: 'maintainer@fleet.test',
    },
  });
  return stdout.trim();
}

/** `flotilla <argv>` in process, on the maintainer's checkout. */
async function flotilla(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['--root', src, ...argv], {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    cwd: src,
    env,
  });
  output.push(stdout, stderr);
  return { code, stdout, stderr };
}

/** `flotilla bump SLUG --tag TAG`: the branch it pushed. */
async function bump(slug: Slug, tag: string): Promise<string> {
  const run = await flotilla(['bump', slug, '--tag', tag]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const branch = /committed \w+ on (\S+) and pushed it to origin/.exec(run.stdout)?.[1];
  expect(branch).toBeDefined();
  return branch!;
}

async function plan(branch: string): Promise<{ code: number; report: PlanReport; stderr: string }> {
  const run = await flotilla(['plan', '--base', 'main', '--head', branch, '--format', 'json']);
  return { code: run.code, report: JSON.parse(run.stdout) as PlanReport, stderr: run.stderr };
}

const changedTenants = (report: PlanReport) => report.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug);

interface Merge {
  /** The source (main) commit the merge made. */
  sha: string;
  /** performance.now() once main was pushed: where merge -> converged starts. */
  at: number;
}

/** What GitHub's merge button does: a merge commit on main, pushed. */
async function mergePullRequest(branch: string): Promise<Merge> {
  await gitIn(src, ['merge', '--no-ff', '--no-edit', '-m', `Merge branch '${branch}'`, branch]);
  return pushMain();
}

async function pushMain(): Promise<Merge> {
  await gitIn(src, ['push', '--quiet', 'origin', 'main']);
  const at = performance.now();
  return { sha: await gitIn(src, ['rev-parse', 'HEAD']), at };
}

/** performance.now() when the last publish finished, for the timing table. */
let publishedAt = 0;

/** `flotilla publish` (what the publish workflow runs on push to main): the tenants it committed. */
async function publish(): Promise<string[]> {
  const run = await flotilla(['publish', '--repo', repoUrl, '--cache', join(work, 'publish-cache.git')]);
  publishedAt = performance.now();
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return [...run.stdout.matchAll(/^(\S+): committed$/gm)].map((m) => m[1]!);
}

const tenantHead = async (slug: Slug) => (await remoteBranchHead(repoUrl, `tenants/${slug}`))!;

// ---- the hosts ----------------------------------------------------------------

interface Host {
  slug: Slug;
  installDir: string;
  stateDir: string;
  env: Record<string, string>;
}

const hosts = {} as Record<Slug, Host>;

async function makeHost(slug: Slug): Promise<Host> {
  const installDir = join(work, 'hosts', slug, 'install');
  const stateDir = join(work, 'hosts', slug, 'state');
  await mkdir(installDir, { recursive: true });
  return {
    slug,
    installDir,
    stateDir,
    env: agentSettings(ctx, { repoUrl, tenant: slug, installDir, stateDir, github: { standIn: github, repo: GITHUB_REPO } }),
  };
}

interface AgentRun {
  code: number;
  log: string;
  /** performance.now() when the pass returned. */
  at: number;
}

/** One poll on every host at once (each host polls on its own schedule; here, right after publish). */
async function pollAllHosts(): Promise<Record<Slug, AgentRun>> {
  const runs = await Promise.all(
    TENANTS.map(async (slug): Promise<AgentRun> => {
      let log = '';
      const code = await runAgentCli(['once'], {
        env: hosts[slug].env,
        stdout: (s) => void (log += s),
        stderr: (s) => void (log += s),
        statusClient: { retry: { retries: 1, baseDelayMs: 50 }, throttle: { minWriteIntervalMs: 10 } },
      });
      output.push(log);
      return { code, log, at: performance.now() };
    }),
  );
  return Object.fromEntries(TENANTS.map((slug, i) => [slug, runs[i]!])) as Record<Slug, AgentRun>;
}

/** `state: description` of the `flotilla/<slug>` statuses GitHub shows on a commit, oldest first. */
function statuses(sha: string, slug: Slug): string[] {
  return github
    .statuses(GITHUB_REPO, sha)
    .filter((s) => s.context === `flotilla/${slug}`)
    .map((s) => `${s.state}: ${s.description ?? ''}`);
}

const statusCount = (slug: Slug) => github.statuses(GITHUB_REPO).filter((s) => s.context === `flotilla/${slug}`).length;

interface RunningApp {
  id: string;
  version: string;
  health: string;
}

/** The one running container of a tenant's stack, what it runs (`cat /VERSION`) and its health. */
async function runningApp(slug: Slug): Promise<RunningApp> {
  const ids = (
    await docker(
      ['ps', '--quiet', '--filter', `label=com.docker.compose.project=${slug}`, '--filter', 'label=com.docker.compose.service=app'],
      dockerClient,
    )
  )
    .split(/\s+/)
    .filter(Boolean);
  expect(ids).toHaveLength(1);
  const id = ids[0]!;
  const version = (await docker(['exec', id, 'cat', '/VERSION'], dockerClient)).trim();
  const health = (await docker(['inspect', '--format', '{{.State.Health.Status}}', id], dockerClient)).trim();
  return { id, version, health };
}

async function runningApps(): Promise<Record<Slug, RunningApp>> {
  const apps = await Promise.all(TENANTS.map(runningApp));
  return Object.fromEntries(TENANTS.map((slug, i) => [slug, apps[i]!])) as Record<Slug, RunningApp>;
}

// ---- merge -> converged, per tenant -------------------------------------------

interface Timing {
  step: string;
  slug: Slug;
  outcome: string;
  /** Merge pushed -> publish done (the publish workflow's share). */
  publishSeconds: number;
  /** Merge pushed -> the agent's pass returned with the stack healthy and statuses sent. */
  seconds?: number;
}

const timings: Timing[] = [];

function recordTimings(step: string, merge: Merge, runs: Record<Slug, AgentRun>): void {
  for (const slug of TENANTS) {
    const run = runs[slug];
    const outcome = /outcome: noop/.test(run.log) ? 'nothing to do' : run.code === 0 ? 'converged' : `failed (exit ${run.code})`;
    const publishSeconds = (publishedAt - merge.at) / 1000;
    timings.push({ step, slug, outcome, publishSeconds, ...(outcome === 'converged' ? { seconds: (run.at - merge.at) / 1000 } : {}) });
  }
}

function timingTable(): string {
  const rows = [
    ['step', 'tenant', 'outcome', 'merge -> published', 'merge -> converged'],
    ...timings.map((t) => [
      t.step,
      t.slug,
      t.outcome,
      `${t.publishSeconds.toFixed(2)} s`,
      t.seconds === undefined ? '-' : `${t.seconds.toFixed(2)} s`,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

// ---- setup --------------------------------------------------------------------

/** carol's .env as ops wrote it by hand, before Flotilla: comments, quotes, `export`, secrets. */
let carolHandWritten: string;
const CAROL_SECRETS = ['correct horse $battery staple', 'carol-hand-made-secret-0f9e8d7c'];

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'full-loop-'));
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  github = await startGitHubStandIn({ repos: [GITHUB_REPO] });

  // The fleet repo: the fixture, pointed at this run's registry, on main.
  src = join(work, 'fleet');
  await cp(join(FIXTURE, 'fleet'), join(src, 'fleet'), { recursive: true });
  await cp(join(FIXTURE, 'templates'), join(src, 'templates'), { recursive: true });
  const fleetFile = join(src, 'fleet', 'fleet.yaml');
  await writeFile(fleetFile, setYamlScalar(await readFile(fleetFile, 'utf8'), ['defaults', 'registry'], FLEET_REGISTRY, 'fleet/fleet.yaml'));
  await gitIn(work, ['init', '--quiet', '--initial-branch=main', src]);
  await gitIn(src, ['add', '.']);
  await gitIn(src, ['commit', '--quiet', '-m', 'Fleet: alpha, bravo (managed), carol (adopted)']);
  await gitIn(src, ['remote', 'add', 'origin', repoUrl]);

  for (const slug of TENANTS) hosts[slug] = await makeHost(slug);
  carolHandWritten = await readFile(join(FIXTURE, 'hosts', 'carol.env'), 'utf8');
  await copyFile(join(FIXTURE, 'hosts', 'carol.env'), join(hosts.carol.installDir, '.env'));
});

afterAll(async () => {
  if (timings.length > 0) console.log(`\nfull loop: merge -> converged per tenant\n${timingTable()}\n`);
  const compose = createComposeRunner({
    command: ['docker-compose'],
    dockerHost: ctx.host,
    env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig },
  });
  for (const slug of TENANTS) {
    const dir = hosts[slug]?.installDir;
    if (dir) await compose.down({ dir, project: slug }).catch(() => undefined);
  }
  await github?.close();
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

// ---- the loop -----------------------------------------------------------------

describe('the full loop: bump -> plan -> merge -> publish -> agents -> statuses', () => {
  /** The containers after the last step, to tell "untouched" from "recreated". */
  let apps: Record<Slug, RunningApp>;

  it('rolls the fleet out: every tenant converges on v1 and reports success on its commit and the source commit', async () => {
    const initial = await pushMain();

    expect(await publish()).toEqual([...TENANTS]);
    const runs = await pollAllHosts();
    recordTimings('initial rollout', initial, runs);

    for (const slug of TENANTS) {
      expect(runs[slug].code, runs[slug].log).toBe(0);
      const expected = ['pending: applying v1', 'success: v1 up, 1/1 healthy'];
      expect(statuses(await tenantHead(slug), slug)).toEqual(expected);
      expect(statuses(initial.sha, slug)).toEqual(expected);
    }
    apps = await runningApps();
    for (const slug of TENANTS) expect(apps[slug]).toMatchObject({ version: 'v1', health: 'healthy' });
    // The adopted host's .env: every byte kept, the env patch's missing keys appended.
    expect(await readFile(join(hosts.carol.installDir, '.env'), 'utf8')).toBe(
      `${carolHandWritten}# Added by fleet env-patch\nLOG_LEVEL=info\nREGISTRY=${FLEET_REGISTRY}\n`,
    );
  });

  it('bumps one tenant: the plan shows only it, only its agent applies, it runs the new image', async () => {
    const branch = await bump('carol', 'v2');

    const preview = await plan(branch);
    expect(preview.code, preview.stderr).toBe(0);
    expect(changedTenants(preview.report)).toEqual(['carol']);
    expect(preview.report.tenants.find((t) => t.slug === 'carol')?.imageTag).toEqual({ before: 'v1', after: 'v2' });
    expect(preview.report.tagChecks.map((c) => [c.image, c.tag, c.result, c.tenants])).toEqual([
      [`${FLEET_REGISTRY}/app`, 'v2', 'present', ['carol']],
    ]);

    const merge = await mergePullRequest(branch);
    const before = { alpha: statusCount('alpha'), bravo: statusCount('bravo') };
    expect(await publish()).toEqual(['carol']);
    const runs = await pollAllHosts();
    recordTimings('bump carol v1 -> v2', merge, runs);

    expect(runs.carol.code, runs.carol.log).toBe(0);
    for (const slug of ['alpha', 'bravo'] as const) {
      expect(runs[slug].code, runs[slug].log).toBe(0);
      expect(runs[slug].log).toMatch(/outcome: noop/);
      expect(statusCount(slug)).toBe(before[slug]);
    }
    const now = await runningApps();
    expect(now.carol).toMatchObject({ version: 'v2', health: 'healthy' });
    expect(now.alpha).toEqual(apps.alpha);
    expect(now.bravo).toEqual(apps.bravo);
    const expected = ['pending: applying v2', 'success: v2 up, 1/1 healthy'];
    expect(statuses(await tenantHead('carol'), 'carol')).toEqual(expected);
    expect(statuses(merge.sha, 'carol')).toEqual(expected);
    // Byte for byte what ops wrote, but for the one key the bump moved (its comment kept).
    expect(await readFile(join(hosts.carol.installDir, '.env'), 'utf8')).toBe(
      `${carolHandWritten.replace('IMAGE_TAG=v1   # what install.sh pulled', 'IMAGE_TAG=v2   # what install.sh pulled')}` +
        `# Added by fleet env-patch\nLOG_LEVEL=info\nREGISTRY=${FLEET_REGISTRY}\n`,
    );
    apps = now;
  });

  let badMerge: Merge;

  it('a tag missing from the registry: the plan says so, and once merged the tenant fails at pull and keeps its old image', async () => {
    const branch = await bump('alpha', 'v9-missing');

    const preview = await plan(branch);
    // The pre-merge check a reviewer sees: red, non-zero.
    expect(preview.code).not.toBe(0);
    expect(preview.stderr).toContain(`${FLEET_REGISTRY}/app:v9-missing is missing`);
    expect(preview.report.ok).toBe(false);
    expect(changedTenants(preview.report)).toEqual(['alpha']);

    // Merged anyway (an admin overriding the failed check).
    badMerge = await mergePullRequest(branch);
    const before = { bravo: statusCount('bravo'), carol: statusCount('carol') };
    expect(await publish()).toEqual(['alpha']);
    const runs = await pollAllHosts();
    recordTimings('bump alpha to v9-missing', badMerge, runs);

    expect(runs.alpha.code, runs.alpha.log).toBe(1);
    const [pending, failure, ...more] = statuses(await tenantHead('alpha'), 'alpha');
    expect(pending).toBe('pending: applying v9-missing');
    expect(failure).toMatch(/^failure: pull failed: .*(manifest unknown|not found)/);
    expect(more).toEqual([]);
    expect(statuses(badMerge.sha, 'alpha')).toEqual([pending, failure]);
    for (const slug of ['bravo', 'carol'] as const) {
      expect(runs[slug].log).toMatch(/outcome: noop/);
      expect(statusCount(slug)).toBe(before[slug]);
    }
    // The same containers as before: alpha still on v1, nobody else touched.
    expect(await runningApps()).toEqual(apps);
  });

  it('a revert of the bad merge: the failed tenant converges again, the others stay as they were', async () => {
    await gitIn(src, ['revert', '--no-edit', '-m', '1', badMerge.sha]);
    const revert = await pushMain();

    expect(await publish()).toEqual(['alpha']);
    const runs = await pollAllHosts();
    recordTimings('revert alpha', revert, runs);

    expect(runs.alpha.code, runs.alpha.log).toBe(0);
    const expected = ['pending: applying v1', 'success: v1 up, 1/1 healthy'];
    expect(statuses(await tenantHead('alpha'), 'alpha')).toEqual(expected);
    expect(statuses(revert.sha, 'alpha')).toEqual(expected);
    for (const slug of ['bravo', 'carol'] as const) expect(runs[slug].log).toMatch(/outcome: noop/);
    const now = await runningApps();
    expect(now.alpha).toMatchObject({ version: 'v1', health: 'healthy' });
    expect(now.bravo).toEqual(apps.bravo);
    expect(now.carol).toEqual(apps.carol);
  });

  it('`flotilla status` shows the fleet converged, each tenant on its tag', async () => {
    const run = await flotilla(['status', '--json', '--repo', GITHUB_REPO], {
      FLOTILLA_GITHUB_TOKEN: github.token,
      FLOTILLA_GITHUB_API_URL: github.url,
    });

    expect(run.code, run.stderr).toBe(0);
    const status = JSON.parse(run.stdout) as { summary: Record<string, number>; tenants: Array<Record<string, unknown>> };
    expect(status.tenants.map((t) => [t.slug, t.verdict, t.desiredTag, t.publishedTag])).toEqual([
      ['alpha', 'converged', 'v1', 'v1'],
      ['bravo', 'converged', 'v1', 'v1'],
      ['carol', 'converged', 'v2', 'v2'],
    ]);
    expect(status.summary.converged).toBe(3);
  });

  it('kept every secret on its host and every request within GitHub’s API description', async () => {
    const generated = /^APP_SECRET=(.+)$/m.exec(await readFile(join(hosts.alpha.installDir, '.env'), 'utf8'))?.[1];
    expect(generated).toBeDefined();
    const descriptions = github.statuses(GITHUB_REPO).map((s) => s.description ?? '').join('\n');
    for (const secret of [...CAROL_SECRETS, generated!]) {
      expect(output.join('')).not.toContain(secret);
      expect(descriptions).not.toContain(secret);
    }
    expect(github.violations()).toEqual([]);
  });
});
