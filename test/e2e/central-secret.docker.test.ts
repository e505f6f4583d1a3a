// A secret set centrally, end to end on real parts (issue 17): the host makes its age key
// (`flotilla-agent keygen`), the maintainer puts its recipient in the tenant file and runs
// `flotilla secret set` with the value on standard input, commits and pushes; `flotilla
// plan` (the PR comment's markdown) says `SMTP_PASSWORD: secret added`; `flotilla publish`
// carries the ciphertext in the manifest; the agent (`flotilla-agent once`, in process)
// decrypts it with its own key and the value reaches the container's environment through
// `.env`, on the run's private dockerd with Debian's docker-compose. Then the value is
// searched for everywhere else it must not be: the fleet repo's whole history and every
// object in it, the plan comment, the agent's and the CLI's output, the statuses the
// GitHub stand-in received, `flotilla status` and the agent's state dir.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createComposeRunner } from '../../agent/compose.js';
import { runAgentCli } from '../../agent/main.js';
import { runCli } from '../../renderer/main.js';
import { agentSettings } from '../support/agent-settings.js';
import { startGitHubStandIn, type GitHubStandIn } from '../support/github-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { docker } from '../support/images.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const execFileAsync = promisify(execFile);

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const GITHUB_REPO = 'acme/fleet';
const TENANT = 'relay';
/** The SMTP password a person sets once for the tenant. */
const VALUE = 'smtp-relay-Pa55word-3f8a91c2e7';

let git: GitServer;
let github: GitHubStandIn;
let work: string;
let repoUrl: string;
/** The maintainer's checkout of the fleet repo. */
let src: string;
let installDir: string;
let stateDir: string;
/** Everything the CLI and the agent printed. */
const output: string[] = [];

async function gitIn(dir: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', ['-C', dir, ...args], {
    maxBuffer: 64 * 1024 * 1024,
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

async function flotilla(argv: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['--root', src, ...argv], {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    cwd: src,
    env: opts.env ?? {},
    ...(opts.stdin !== undefined ? { readStdin: async () => opts.stdin! } : {}),
  });
  output.push(stdout, stderr);
  return { code, stdout, stderr };
}

function agentEnv(): Record<string, string> {
  return agentSettings(ctx, { repoUrl, tenant: TENANT, installDir, stateDir, github: { standIn: github, repo: GITHUB_REPO } });
}

async function agent(args: string[]): Promise<{ code: number; stdout: string; log: string }> {
  let stdout = '';
  let log = '';
  const code = await runAgentCli(args, {
    env: agentEnv(),
    stdout: (s) => void ((stdout += s), (log += s)),
    stderr: (s) => void (log += s),
    statusClient: { retry: { retries: 1, baseDelayMs: 50 }, throttle: { minWriteIntervalMs: 10 } },
  });
  output.push(log);
  return { code, stdout, log };
}

/** Every 8-character run of the value found in text, line breaks ignored (none: nothing leaked). */
function leaks(text: string): string[] {
  const joined = text.replace(/\r?\n/g, '');
  const found: string[] = [];
  for (let i = 0; i + 8 <= VALUE.length; i++) if (joined.includes(VALUE.slice(i, i + 8))) found.push(VALUE.slice(i, i + 8));
  return found;
}

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'central-secret-'));
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  github = await startGitHubStandIn({ repos: [GITHUB_REPO] });
  installDir = join(work, 'host', 'install');
  stateDir = join(work, 'host', 'state');
  await mkdir(installDir, { recursive: true });

  src = join(work, 'fleet');
  await mkdir(join(src, 'fleet', 'tenants'), { recursive: true });
  await mkdir(join(src, 'templates'));
  await writeFile(
    join(src, 'fleet', 'fleet.yaml'),
    [
      'defaults:',
      '  imageTag: v1',
      `  registry: ${ctx.registry}/flotilla-test`,
      '  images:',
      '    app: app',
      '  domainSuffix: fleet.test',
      '  # Generated on each host unless set centrally.',
      '  secrets:',
      '    - APP_SECRET',
      '',
    ].join('\n'),
  );
  await writeFile(join(src, 'fleet', 'tenants', `${TENANT}.yaml`), '# The mail relay: its SMTP password is issued once, by the provider.\nmode: managed\nsecrets:\n  - SMTP_PASSWORD\n');
  await writeFile(
    join(src, 'templates', 'docker-compose.yml.hbs'),
    [
      'services:',
      '  app:',
      '    image: ${REGISTRY}/app:{{composeVar "IMAGE_TAG" imageTag}}',
      '    init: true',
      '    network_mode: none',
      '    command: ["sleep", "3600"]',
      '    environment:',
      '      APP_SECRET: ${APP_SECRET}',
      '      SMTP_PASSWORD: ${SMTP_PASSWORD}',
      '    healthcheck:',
      '      test: ["CMD", "true"]',
      '      interval: 1s',
      '      timeout: 2s',
      '      retries: 1',
      '',
    ].join('\n'),
  );
  await writeFile(join(src, 'templates', 'env.hbs'), 'REGISTRY={{registry}}\nIMAGE_TAG={{imageTag}}\n');
  await gitIn(work, ['init', '--quiet', '--initial-branch=main', src]);
  await gitIn(src, ['add', '.']);
  await gitIn(src, ['commit', '--quiet', '-m', 'Fleet: the relay tenant']);
  await gitIn(src, ['remote', 'add', 'origin', repoUrl]);
  await gitIn(src, ['push', '--quiet', 'origin', 'main']);
});

afterAll(async () => {
  const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  if (installDir) await compose.down({ dir: installDir, project: TENANT }).catch(() => undefined);
  await github?.close();
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

async function runningApp(): Promise<string> {
  const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${TENANT}`], dockerClient)).split(/\s+/).filter(Boolean);
  expect(ids).toHaveLength(1);
  return ids[0]!;
}

describe('a secret set with `flotilla secret set` reaches the container and nothing else', () => {
  let planMarkdown = '';
  let statusText = '';
  let sourceCommit = '';

  it('keygen on the host, the recipient in the fleet, `secret set` from stdin, plan says `secret added`', async () => {
    const keygen = await agent(['keygen']);
    expect(keygen.code).toBe(0);
    const recipient = keygen.stdout.trim();
    expect(recipient).toMatch(/^age1[a-z0-9]{58}$/);
    const file = join(src, 'fleet', 'tenants', `${TENANT}.yaml`);
    await writeFile(file, `${await readFile(file, 'utf8')}ageRecipients:\n  - ${recipient}   # the relay host, keygen\n`);

    const set = await flotilla(['secret', 'set', TENANT, 'SMTP_PASSWORD'], { stdin: `${VALUE}\n` });
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(await readFile(file, 'utf8')).toMatch(/^# The mail relay: its SMTP password is issued once, by the provider\.\nmode: managed\n[\s\S]*encryptedSecrets:\n {2}SMTP_PASSWORD:\n/);
    expect((await flotilla(['check'])).code).toBe(0);

    await gitIn(src, ['add', '.']);
    await gitIn(src, ['commit', '--quiet', '-m', 'relay: the SMTP password, set centrally']);
    const plan = await flotilla(['plan', '--base', 'HEAD~1', '--head', 'HEAD', '--no-registry-check']);
    expect(plan.code, plan.stderr).toBe(0);
    planMarkdown = plan.stdout;
    expect(planMarkdown).toContain('- `SMTP_PASSWORD`: secret added');
    expect(planMarkdown).not.toContain('BEGIN AGE ENCRYPTED FILE');
  });

  it('publish carries the ciphertext; the agent decrypts it and the container has the value', async () => {
    await gitIn(src, ['push', '--quiet', 'origin', 'main']);
    sourceCommit = await gitIn(src, ['rev-parse', 'HEAD']);
    const publish = await flotilla(['publish', '--repo', repoUrl, '--cache', join(work, 'publish-cache.git')]);
    expect(publish.stderr).toBe('');
    expect(publish.code).toBe(0);

    const once = await agent(['once']);
    expect(once.code, once.log).toBe(0);
    expect(once.log).toContain('secrets: decrypted SMTP_PASSWORD');
    const id = await runningApp();
    // What the running process sees, and what the container was created with.
    expect((await docker(['exec', id, 'sh', '-c', 'echo "$SMTP_PASSWORD"'], dockerClient)).trim()).toBe(VALUE);
    const env = JSON.parse(await docker(['inspect', '--format', '{{json .Config.Env}}', id], dockerClient)) as string[];
    expect(env).toContain(`SMTP_PASSWORD=${VALUE}`);
    // The generated one still is generated; the central one is not.
    expect(env.find((l) => l.startsWith('APP_SECRET='))).toMatch(/^APP_SECRET=[A-Za-z0-9_-]{43}$/);
    const dotEnv = await readFile(join(installDir, '.env'), 'utf8');
    expect(dotEnv).toContain(`SMTP_PASSWORD=${VALUE}\n`);

    const statuses = github.statuses(GITHUB_REPO, sourceCommit).filter((s) => s.context === `flotilla/${TENANT}`);
    expect(statuses.at(-1)?.state).toBe('success');
  });

  it('`flotilla status` reads the fleet converged', async () => {
    const run = await flotilla(['status', '--json', '--repo', GITHUB_REPO], { env: { FLOTILLA_GITHUB_TOKEN: github.token, FLOTILLA_GITHUB_API_URL: github.url } });
    expect(run.code, run.stderr).toBe(0);
    statusText = run.stdout + run.stderr;
    const status = JSON.parse(run.stdout) as { tenants: Array<Record<string, unknown>> };
    expect(status.tenants.map((t) => [t.slug, t.verdict])).toEqual([[TENANT, 'converged']]);
  });

  it('the value is nowhere else: repo history and objects, plan comment, logs, statuses, status, state dir', async () => {
    expect(leaks(`…${VALUE.slice(5, 13)}…`)).toHaveLength(1); // the search finds what it looks for
    // The fleet repo on the git server: every commit's patch, and every object's content.
    const mirror = join(work, 'mirror.git');
    await execFileAsync('git', ['clone', '--quiet', '--mirror', repoUrl, mirror]);
    const history = await gitIn(mirror, ['log', '-p', '--all', '--format=%H%n%B']);
    expect(history).toContain('BEGIN AGE ENCRYPTED FILE');
    expect(leaks(history)).toEqual([]);
    const objects = (await gitIn(mirror, ['cat-file', '--batch-all-objects', '--batch-check=%(objectname)'])).split('\n').filter(Boolean);
    expect(objects.length).toBeGreaterThan(5);
    const contents = await Promise.all(objects.map((oid) => gitIn(mirror, ['cat-file', '-p', oid])));
    expect(leaks(contents.join('\n'))).toEqual([]);
    // The maintainer's checkout too (its reflog and loose objects hold what was committed).
    expect(leaks(await gitIn(src, ['log', '-p', '--all', '--reflog']))).toEqual([]);

    expect(leaks(planMarkdown)).toEqual([]);
    expect(leaks(output.join(''))).toEqual([]);
    const posted = github.statuses(GITHUB_REPO).map((s) => `${s.state} ${s.context} ${s.description ?? ''} ${s.target_url ?? ''}`);
    expect(posted.length).toBeGreaterThanOrEqual(2);
    expect(leaks(posted.join('\n'))).toEqual([]);
    expect(leaks(statusText)).toEqual([]);

    const files = Object.keys(await snapshotTree(stateDir, { dirs: false }));
    expect(files).toContain('age-identity.txt');
    const state = await Promise.all(files.map((p) => readFile(join(stateDir, p), 'latin1')));
    expect(leaks(state.join('\n'))).toEqual([]);
    expect(github.violations()).toEqual([]);
  });
});
