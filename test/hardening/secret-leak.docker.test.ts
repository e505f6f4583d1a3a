// Secrets stay on the host, on the real engine. The incident: a template typo
// `cpus: ${APP_SECRET}` made compose fail quoting the generated secret, and the agent
// posted it to GitHub (tenant and source commit) and logged it; a failing post-up hook
// posted 34 of a secret's 43 characters. Here a host with a hand-set password in its
// `.env` goes through both with the private dockerd, Debian's docker-compose, git over
// HTTP and the OpenAPI-checked GitHub stand-in; then everything the agent sent or wrote
// (statuses, its log, a metrics scrape, `plan`, the state dir) is searched for the
// values and for every 8-character run of them.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scanComposeText } from '../../renderer/core/compose-vars.js';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type Manifest, type ManifestHooks } from '../../renderer/core/manifest.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { createComposeRunner } from '../../agent/compose.js';
import { runAgentCli } from '../../agent/main.js';
import { readState } from '../../agent/state.js';
import { agentSettings } from '../support/agent-settings.js';
import { startGitHubStandIn, type GitHubStandIn } from '../support/github-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { docker, pushTestImage } from '../support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO } from '../support/tenant-fixture.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const TENANT = 'leaky';
const REPOSITORY = 'flotilla-test/leaky';
const GITHUB_REPO = 'acme/fleet';
/** Set by hand on the host before Flotilla; the fleet never sees it. */
const HOST_PASSWORD = 'Tr0ub4dor&3-horse-battery';

function composeText(opts: { cpusTypo?: boolean }): string {
  return [
    'services:',
    '  app:',
    `    image: \${REGISTRY}/${REPOSITORY}:\${IMAGE_TAG:-v1}`,
    '    init: true',
    '    network_mode: none',
    '    command: ["sleep", "3600"]',
    ...(opts.cpusTypo ? ['    cpus: ${APP_SECRET}'] : []),
    '    environment:',
    '      APP_SECRET: ${APP_SECRET}',
    '    healthcheck:',
    '      test: ["CMD", "true"]',
    '      interval: 1s',
    '      timeout: 2s',
    '      retries: 1',
    '',
  ].join('\n');
}

let git: GitServer;
let github: GitHubStandIn;
let work: string;
let repoUrl: string;
let installDir: string;
let stateDir: string;
let releases = 0;
/** Everything the agent printed, plan included. */
const output: string[] = [];
const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'secret-leak-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(installDir);
  await writeFile(join(installDir, '.env'), `# set by hand\nDB_PASSWORD=${HOST_PASSWORD}\n`, { mode: 0o600 });
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  github = await startGitHubStandIn({ repos: [GITHUB_REPO] });
  await pushTestImage(ctx.registry, REPOSITORY, ['v1'], dockerClient);
});

afterAll(async () => {
  await compose.down({ dir: installDir, project: TENANT }).catch(() => undefined);
  await github?.close();
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

/** Publishes one release; returns the tenant commit and the source commit it names. */
async function publish(opts: { cpusTypo?: boolean; hooks?: ManifestHooks }): Promise<{ tenantCommit: string; sourceCommit: string }> {
  const sourceCommit = fakeSourceCommit(`secret leak release ${++releases}`);
  const text = composeText(opts);
  const manifest: Manifest = {
    schemaVersion: 1,
    tenant: TENANT,
    mode: 'managed',
    imageTag: 'v1',
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
    files: [{ path: 'docker-compose.yml', sha256: sha256(text), mode: 0o644 }],
    envPatch: { REGISTRY: ctx.registry, IMAGE_TAG: 'v1' },
    requiredVariables: scanComposeText(text, 'docker-compose.yml').required,
    secrets: ['APP_SECRET'],
    ...(opts.hooks ? { hooks: opts.hooks } : {}),
  };
  const files = [
    { path: 'docker-compose.yml', content: text, mode: 0o644 },
    { path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 },
  ];
  await publishTenants({ repoUrl, workDir: join(work, 'publish.git'), tenants: [{ slug: TENANT, files }], source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit } });
  return { tenantCommit: (await remoteBranchHead(repoUrl, `tenants/${TENANT}`))!, sourceCommit };
}

function agentEnv(): Record<string, string> {
  return agentSettings(ctx, { repoUrl, tenant: TENANT, installDir, stateDir, github: { standIn: github, repo: GITHUB_REPO } }, { FLOTILLA_SCHEDULE: '0 0 1 1 *' });
}

async function cli(args: string[], opts: { stopSignal?: AbortSignal; lines?: string[] } = {}): Promise<{ code: number; text: string }> {
  const lines = opts.lines ?? [];
  const { stopSignal } = opts;
  const code = await runAgentCli(args, {
    env: agentEnv(),
    stdout: (s) => void lines.push(s),
    stderr: (s) => void lines.push(s),
    statusClient: { retry: { retries: 1, baseDelayMs: 50 }, throttle: { minWriteIntervalMs: 10 } },
    ...(stopSignal ? { stopSignal } : {}),
  });
  output.push(...lines);
  return { code, text: lines.join('') };
}

/** The flotilla/<tenant> statuses on a commit, oldest first, as `state: description`. */
function statuses(sha: string): string[] {
  return github
    .statuses(GITHUB_REPO, sha)
    .filter((s) => s.context === `flotilla/${TENANT}`)
    .map((s) => `${s.state}: ${s.description ?? ''}`);
}

/** Every 8-character run of each value found in text, line breaks ignored (none: nothing leaked). */
function leaks(text: string, values: string[]): string[] {
  const joined = text.replace(/\r?\n/g, '');
  const found: string[] = [];
  for (const value of values) for (let i = 0; i + 8 <= value.length; i++) if (joined.includes(value.slice(i, i + 8))) found.push(value.slice(i, i + 8));
  return found;
}

async function stateDirText(): Promise<string> {
  const files = Object.keys(await snapshotTree(stateDir, { dirs: false })).filter((p) => !p.startsWith('repo.git/'));
  return (await Promise.all(files.map((p) => readFile(join(stateDir, p), 'latin1')))).join('\n');
}

async function runningAppEnv(): Promise<string> {
  const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${TENANT}`], dockerClient)).split(/\s+/).filter(Boolean);
  expect(ids).toHaveLength(1);
  return (await docker(['exec', ids[0]!, 'sh', '-c', 'echo "$APP_SECRET"'], dockerClient)).trim();
}

describe('a generated secret and a host password never leave the host', () => {
  let appSecret = '';
  let metricsText = '';
  let planText = '';
  const published: string[] = [];

  it('applies a first release, generating APP_SECRET into .env beside the host’s own password', async () => {
    const { tenantCommit, sourceCommit } = await publish({});
    published.push(tenantCommit, sourceCommit);
    expect((await cli(['once'])).code).toBe(0);
    const env = await readFile(join(installDir, '.env'), 'utf8');
    appSecret = /^APP_SECRET=(.*)$/m.exec(env)?.[1] ?? '';
    expect(appSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(env).toContain(`DB_PASSWORD=${HOST_PASSWORD}\n`);
    expect(await runningAppEnv()).toBe(appSecret);
  });

  it('`cpus: ${APP_SECRET}`: compose quotes the value; the failure status on both commits says where, with the value masked', async () => {
    const { tenantCommit, sourceCommit } = await publish({ cpusTypo: true });
    published.push(tenantCommit, sourceCommit);
    const { code, text } = await cli(['once']);
    expect(code).toBe(1);
    for (const sha of [tenantCommit, sourceCommit]) {
      const last = statuses(sha).at(-1)!;
      // docker-compose 1.29's message is `... service.app.cpus ...: "<value>" is not a valid float`.
      expect(last).toMatch(/^failure: config failed: .*cpus.*"\*\*\*" is not a valid float/);
    }
    expect(text).toMatch(/"\*\*\*" is not a valid float/);
    expect(leaks(text, [appSecret])).toEqual([]);
    // Nothing changed: the first release still runs, with its secret.
    expect(await runningAppEnv()).toBe(appSecret);
  });

  it('a post-up hook printing both values, the secret where the 80-character cut leaves 34 of its characters: rolled back, nothing of them in the status', async () => {
    // The last stderr line is cut to 77 characters and `...`: the key starts at 43.
    const say = 'migrate: cannot authenticate as app, key';
    expect(say.length + 3).toBe(43);
    const hook = {
      name: 'migrate',
      run: [
        'sh',
        '-c',
        `echo "connecting with password $(sed -n 's/^DB_PASSWORD=//p' .env)"; echo "${say} = $(sed -n 's/^APP_SECRET=//p' .env) rejected" >&2; exit 1`,
      ],
    };
    const { tenantCommit, sourceCommit } = await publish({ hooks: { postUp: [hook] } });
    published.push(tenantCommit, sourceCommit);
    const { code } = await cli(['once']);
    expect(code).toBe(1);
    const last = statuses(tenantCommit).at(-1)!;
    expect(last).toMatch(new RegExp(`^failure: post-up hook migrate failed: ${say} = \\*\\*\\* rejected; rolled back`));
    expect((await readState(stateDir)).lastApplied?.commit).toBe(published[0]);
    expect(await runningAppEnv()).toBe(appSecret);
    // The run log is kept for the operator, values masked.
    const runs = Object.entries(await snapshotTree(join(stateDir, 'hooks', 'migrate', 'runs'), { dirs: false }));
    expect(runs).toHaveLength(1);
    const runLog = await readFile(join(stateDir, 'hooks', 'migrate', 'runs', runs[0]![0]), 'utf8');
    expect(runLog).toContain('connecting with password ***\n');
    expect(runLog).toContain(`${say} = *** rejected`);
  });

  it('`plan` and a metrics scrape of the daemon carry neither', async () => {
    planText = (await cli(['plan'])).text;
    expect(planText).toContain(`plan for ${TENANT}`);
    const stop = new AbortController();
    const lines: string[] = [];
    const daemon = cli(['run', '--metrics', '127.0.0.1:0'], { stopSignal: stop.signal, lines });
    try {
      const deadline = Date.now() + 60_000;
      // One whole pass first, so the scrape sees what it recorded.
      while (!/outcome: /.test(lines.join(''))) {
        if (Date.now() > deadline) throw new Error(`the daemon did not finish a pass:\n${lines.join('')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const url = /metrics: serving (http:\S+)/.exec(lines.join(''))![1]!;
      metricsText = await (await fetch(url)).text();
    } finally {
      stop.abort();
    }
    expect((await daemon).code).toBe(0);
    expect(metricsText).toMatch(new RegExp(`flotilla_agent_last_applied_info\\{[^}]*commit="${published[0]}"[^}]*\\} 1`));
  });

  it('statuses, log, metrics, plan and state dir: no run of 8 characters of either value', async () => {
    expect(appSecret).not.toBe('');
    const values = [appSecret, HOST_PASSWORD];
    const posted = github.statuses(GITHUB_REPO).map((s) => s.description ?? '');
    expect(posted.length).toBeGreaterThanOrEqual(6);
    expect(leaks(posted.join('\n'), values)).toEqual([]);
    expect(leaks(output.join(''), values)).toEqual([]);
    expect(leaks(metricsText, values)).toEqual([]);
    expect(leaks(planText, values)).toEqual([]);
    expect(leaks(await stateDirText(), values)).toEqual([]);
    expect(github.violations()).toEqual([]);
    // The host keeps both.
    const env = await readFile(join(installDir, '.env'), 'utf8');
    expect(env).toContain(`APP_SECRET=${appSecret}\n`);
    expect(env).toContain(`DB_PASSWORD=${HOST_PASSWORD}\n`);
  });
});
