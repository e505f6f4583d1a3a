// The pull-request loop a user lives in, end to end on the loopback git server and
// an OpenAPI-checked forge stand-in, once on GitHub's and once on Gitea's: bump -> plan
// -> sticky comment -> merge -> publish -> agents apply and post statuses -> `flotilla
// status`. On Gitea the CLI and the agents are told FLOTILLA_FORGE=gitea (detecting it
// from the /api/v1 URL is forge.test.ts's). Compose is the recording runner here;
// test/e2e/full-loop.docker.test.ts runs the real engine.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAgentCli } from '../../agent/main.js';
import { loadFleet } from '../../renderer/fleet/fleet.js';
import { runCli } from '../../renderer/main.js';
import { FORGE_KINDS, startForgeStandIn, type ForgeStandIn, type ForgeStandInKind } from '../support/forge-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const REPO = 'acme/fleet';
const TENANTS = ['bnkops', 'linda', 'marcelle', 'pia', 'soroush']; // trbh is paused

let server: GitServer;
let kind: ForgeStandInKind;
let github: ForgeStandIn;
let work: string;
let source: string;
let url: string;
const composeOf = new Map<string, RecordingCompose>();

async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', ['-c', 'user.name=Dev', '-c', 'user.email=dev@example.com', ...args], { cwd });
  return stdout.trim();
}

function githubEnv(): Record<string, string> {
  return { FLOTILLA_GITHUB_TOKEN: github.token, FLOTILLA_GITHUB_API_URL: github.url, GITHUB_REPOSITORY: REPO, ...forgeSetting() };
}

function forgeSetting(): Record<string, string> {
  return kind === 'gitea' ? { FLOTILLA_FORGE: 'gitea' } : {};
}

async function flotilla(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    cwd: source,
    env: githubEnv(),
  });
  return { code, out, err };
}

/** One `flotilla-agent once` for a tenant, on its own install and state dirs. */
async function agentOnce(slug: string): Promise<{ code: number; log: string }> {
  let log = '';
  const dir = join(work, 'hosts', slug);
  await mkdir(join(dir, 'install'), { recursive: true });
  let compose = composeOf.get(slug);
  if (!compose) {
    compose = new RecordingCompose({
      services: [{ service: 'api', container: `${slug}-api-1`, state: 'running', health: 'healthy', image: 'api' }],
    });
    composeOf.set(slug, compose);
  }
  const code = await runAgentCli(['once'], {
    stdout: (s) => void (log += s),
    stderr: (s) => void (log += s),
    env: {
      FLOTILLA_REPO: url,
      FLOTILLA_TENANT: slug,
      FLOTILLA_DIR: join(dir, 'install'),
      FLOTILLA_STATE_DIR: join(dir, 'state'),
      FLOTILLA_GITHUB_TOKEN: github.token,
      FLOTILLA_GITHUB_API: github.url,
      FLOTILLA_GITHUB_REPO: REPO,
      FLOTILLA_HEALTH_TIMEOUT: '5',
      ...forgeSetting(),
    },
    compose,
  });
  return { code, log };
}

/** Adopted hosts were installed by other means: their .env already holds what `hostEnv` says. */
async function seedAdoptedHosts(): Promise<void> {
  const fleet = await loadFleet(source);
  for (const tenant of fleet.tenants.filter((t) => t.mode === 'adopted')) {
    const install = join(work, 'hosts', tenant.slug, 'install');
    await mkdir(install, { recursive: true });
    const lines = tenant.hostEnv.map((name) => `${name}=host-${name.toLowerCase()}`);
    await writeFile(join(install, '.env'), `# written by install.sh\n${lines.join('\n')}\n`);
  }
}

describe.each(FORGE_KINDS)('the pull-request loop (loopback git + %s stand-in)', (forgeKind) => {
  beforeAll(async () => {
    kind = forgeKind;
    composeOf.clear();
    server = await startGitServer();
    await server.createBareRepo('fleet.git');
    url = server.url('fleet.git');
    const bare = join(server.root, 'fleet.git');
    github = await startForgeStandIn(kind, {
      repos: [REPO],
      resolveBranch: async (branch) => {
        try {
          return (await run('git', ['--git-dir', bare, 'rev-parse', '--verify', `refs/heads/${branch}^{commit}`])).stdout.trim();
        } catch {
          return undefined;
        }
      },
    });
    work = await mkdtemp(join(tmpdir(), 'flotilla-pr-loop-'));
    source = join(work, 'source');
    await cp(join(repoRoot, 'fleet'), join(source, 'fleet'), { recursive: true });
    await cp(join(repoRoot, 'templates'), join(source, 'templates'), { recursive: true });
    await git(work, 'init', '-q', '-b', 'main', source);
    await git(source, 'add', '-A');
    await git(source, 'commit', '-qm', 'example fleet');
    await git(source, 'remote', 'add', 'origin', url);
    await git(source, 'push', '-q', 'origin', 'main');
    await seedAdoptedHosts();
  });

  afterAll(async () => {
    await github?.close();
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  let prNumber = 0;
  let branch = '';
  let mergeCommit = '';

  it('starts from a converged fleet', async () => {
    // A fleet's first install goes out at once; later changes roll out wave by wave.
    expect((await flotilla('publish', '--repo', url, '--cache', join(work, 'cache'), '--all-waves')).code).toBe(0);
    for (const slug of TENANTS) expect((await agentOnce(slug)).code, slug).toBe(0);
  });

  it('bump opens a PR whose body lists the tenant old -> new', async () => {
    const r = await flotilla('bump', 'pia', '--tag', 'v2.11.0', '--open-pr');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const [pr] = github.pulls(REPO);
    expect(pr).toBeDefined();
    prNumber = pr!.number;
    branch = pr!.head;
    expect(pr!.body).toMatch(/pia/);
    expect(pr!.body).toMatch(/v2\.10\.3.*v2\.11\.0/);
    // Bumping again to the same tag is a no-op, not a second PR.
    await git(source, 'fetch', '-q', 'origin');
    await git(source, 'checkout', '-q', branch);
    const again = await flotilla('bump', 'pia', '--tag', 'v2.11.0', '--open-pr');
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/already/i);
    expect(github.pulls(REPO)).toHaveLength(1);
    await git(source, 'checkout', '-q', 'main');
  });

  it('plan and the sticky comment show only pia changing, and the comment is updated, not duplicated', async () => {
    // The registry check runs against a real registry in renderer/registry.test.ts; none serves the example fleet's here.
    const plan = await flotilla('plan', '--base', 'main', '--head', `origin/${branch}`, '--format', 'json', '--no-registry-check');
    expect(plan.code).toBe(0);
    const report = JSON.parse(plan.out) as { tenants: { slug: string; change: string }[] };
    const changed = report.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug);
    expect(changed).toEqual(['pia']);
    for (let i = 0; i < 2; i++) {
      const c = await flotilla('comment', '--pr', String(prNumber), '--base', 'main', '--head', `origin/${branch}`, '--no-registry-check');
      expect(c.code, c.err).toBe(0);
    }
    const comments = github.comments(REPO, prNumber);
    expect(comments).toHaveLength(1);
    expect(comments[0]!.body).toContain('<!-- flotilla-plan -->');
    expect(comments[0]!.body).toContain('v2.11.0');
  });

  it('merge + publish: only pia gets a commit, only its agent applies, statuses reach the merge commit', async () => {
    await git(source, 'merge', '-q', '--no-ff', '-m', `Merge pull request #${prNumber}`, `origin/${branch}`);
    await git(source, 'push', '-q', 'origin', 'main');
    mergeCommit = await git(source, 'rev-parse', 'HEAD');
    // The example fleet rolls out in waves: canary (bnkops) is untouched by this change, so
    // pia's wave goes out at once; nothing else has a new render.
    const pub = await flotilla('publish', '--repo', url, '--cache', join(work, 'cache'));
    expect(pub.code, pub.err).toBe(0);
    expect(pub.out.match(/^\S+: committed/gm)).toEqual(['pia: committed']);

    for (const slug of TENANTS) {
      const before = composeOf.get(slug)!.ops.length;
      const r = await agentOnce(slug);
      expect(r.code, r.log).toBe(0);
      const ops = composeOf.get(slug)!.ops.slice(before);
      if (slug === 'pia') expect(ops).toEqual(expect.arrayContaining(['config', 'pull', 'up']));
      else expect(ops).not.toContain('up');
    }
    const onMerge = github.statuses(REPO, mergeCommit).filter((s) => s.context === 'flotilla/pia');
    expect(onMerge.map((s) => s.state)).toEqual(['pending', 'success']);
    expect(onMerge[1]!.description).toMatch(/v2\.11\.0 up/);
    const others = github.statuses(REPO, mergeCommit).filter((s) => s.context !== 'flotilla/pia');
    expect(others).toEqual([]);
  });

  it('flotilla status shows the rollout: pia converged on v2.11.0, trbh paused', async () => {
    const r = await flotilla('status', '--json', '--fleet-url', url);
    const status = JSON.parse(r.out) as { tenants: { slug: string; verdict: string; desiredTag: string }[] };
    const pia = status.tenants.find((t) => t.slug === 'pia')!;
    expect(pia.verdict).toBe('converged');
    expect(pia.desiredTag).toBe('v2.11.0');
    expect(status.tenants.find((t) => t.slug === 'trbh')!.verdict).toBe('paused');
    expect(r.code).toBe(0);
  });

  it('no request to the stand-in broke the forge\'s OpenAPI description', () => {
    expect(github.violations()).toEqual([]);
  });
});
