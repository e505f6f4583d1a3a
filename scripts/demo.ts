// `npm start`: Flotilla end to end on one machine, on loopback. scripts/demo.sh
// installs what is missing and runs this inside a network namespace of its own;
// `runDemo` is also what test/demo.docker.test.ts runs.
//
// The story: the example fleet (fleet/ + templates/) becomes a fleet repo on a
// loopback git server; `flotilla publish` renders every tenant to its branch; one
// `flotilla-agent once` per unpaused tenant applies it into its own folder under
// .demo/ and runs the stack on a private dockerd, pulling stand-in images from a
// loopback registry; then one tenant is bumped, planned, published and rolled out
// while the others have nothing to do. Everything started is stopped at the end.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runAgentCli } from '../agent/main.js';
import { loadFleet, type Tenant } from '../renderer/fleet/fleet.js';
import { runCli } from '../renderer/main.js';
import type { CliIo } from '../renderer/cli.js';
import { dockerEnv, startDockerEngine, stopDockerEngine, type DockerEngine } from '../test/support/docker-engine.js';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker, type DockerClient } from '../test/support/images.js';
import { freeLoopbackPort, startRegistry, stopRegistry, type Registry } from '../test/support/registry.js';
import { demoImageReferences, pushDemoImages } from './demo-images.js';
import { createDryRunCompose } from './demo-dry-run-compose.js';
import { isEntryPoint } from '../renderer/core/entry-point.js';

const execFileAsync = promisify(execFile);

export const GITHUB_REPO = 'demo/fleet';
const REGISTRY_NAMESPACE = 'flotilla';

export type DemoMode = 'docker' | 'dry-run';

export interface DemoOptions {
  mode: DemoMode;
  /** Why the dry run was chosen, printed at the top (one reason per entry). */
  dryRunReasons?: string[];
  /** Repository holding the example fleet/ and templates/. */
  repoRoot: string;
  /** Each tenant's host lives in `<hostsDir>/<slug>/` (install dir, state dir, agent.env). Removed at the end. */
  hostsDir: string;
  /** Engine, registry, git server and the source checkout live here. Removed at the end. */
  runDir: string;
  out: (text: string) => void;
  bumpTenant?: string;
  bumpTag?: string;
  healthTimeoutSeconds?: number;
  /** Aborted by Ctrl-C: the demo stops where it is and cleans up. */
  signal?: AbortSignal;
  /** Called with the stacks still running, before anything is stopped (the test looks at them here). */
  beforeCleanup?: (live: LiveDemo) => Promise<void>;
}

export interface LiveDemo {
  docker?: DockerClient;
  tenants: DemoHost[];
  bumped: string;
  bumpTag: string;
}

export interface DemoHost {
  slug: string;
  mode: Tenant['mode'];
  dir: string;
  installDir: string;
  stateDir: string;
  envFile: string;
  httpPort: number;
  /** The .env the host had before Flotilla's first apply. */
  seededEnv: string;
}

export type PassOutcome = 'applied' | 'noop' | 'refused' | 'failed' | 'error' | 'unknown';

export interface TenantReport {
  slug: string;
  firstPass: PassOutcome;
  secondPass: PassOutcome;
  /** What the api container's /VERSION said (docker mode) or IMAGE_TAG in .env (dry run). */
  versionBefore?: string;
  versionAfter?: string;
  apiContainerBefore?: string;
  apiContainerAfter?: string;
}

export interface DemoResult {
  ok: boolean;
  mode: DemoMode;
  problems: string[];
  tenants: TenantReport[];
  bumped: string;
  bumpTag: string;
  statusExitCode?: number;
  /** PIDs of the daemons the demo started (dockerd, registry); all stopped when runDemo returns. */
  startedPids: number[];
}

class DemoAborted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** Copies the example fleet into `dir`, points its registry at `registry`, and makes the first commit on main. */
export async function createSourceRepo(repoRoot: string, dir: string, originUrl: string, registry?: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await cp(join(repoRoot, 'fleet'), join(dir, 'fleet'), { recursive: true });
  await cp(join(repoRoot, 'templates'), join(dir, 'templates'), { recursive: true });
  if (registry) {
    const fleetFile = join(dir, 'fleet', 'fleet.yaml');
    const text = await readFile(fleetFile, 'utf8');
    const edited = pointRegistryAt(text, registry);
    await writeFile(fleetFile, edited);
  }
  const git = (...args: string[]) => execFileAsync('git', ['-C', dir, ...args], { env: gitEnv() });
  await git('init', '--quiet', '--initial-branch=main');
  await git('config', 'user.name', 'Flotilla demo');
  await git('config', 'user.email', 'demo@flotilla.invalid');
  await git('remote', 'add', 'origin', originUrl);
  await git('add', '--all');
  await git('commit', '--quiet', '-m', 'Example fleet');
  await git('push', '--quiet', 'origin', 'main');
  return (await git('rev-parse', 'HEAD')).stdout.trim();
}

/** fleet.yaml with its `defaults.registry` value replaced, every other byte kept. */
export function pointRegistryAt(fleetYaml: string, registry: string): string {
  const pattern = /^(\s+registry:\s*)\S+(.*)$/m;
  if (!pattern.test(fleetYaml)) throw new Error('fleet/fleet.yaml has no `registry:` line under defaults to point at the demo registry');
  return fleetYaml.replace(pattern, (_m, head: string, tail: string) => `${head}${registry}${tail}`);
}

function gitEnv(): NodeJS.ProcessEnv {
  // The user's git config must not change what the demo does (signing, hooks, templates).
  return { PATH: process.env.PATH, HOME: process.env.HOME, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
}

/** A host's .env before Flotilla arrives: the port the stack publishes, and for adopted hosts what install.sh wrote. */
export function seededEnvFile(tenant: Pick<Tenant, 'slug' | 'mode' | 'hostEnv' | 'domain'>, httpPort: number, secret: () => string): string {
  if (tenant.mode !== 'adopted') {
    return [
      `# ${tenant.slug}: written by the demo before the first apply. Flotilla adds its env patch`,
      '# and the generated secrets below; this line stays as it is.',
      `HTTP_PORT=${httpPort}`,
      '',
    ].join('\n');
  }
  const lines = [
    `# Changemaker for ${tenant.domain}, installed with install.sh.`,
    '# Keep this file private: it holds the database and session secrets.',
    '',
    '# Web port (another site uses 80 on this host)',
    `HTTP_PORT=${httpPort}`,
    '',
    '# Secrets (generated at install; Flotilla never sees them)',
  ];
  for (const name of tenant.hostEnv) lines.push(`${name}=${hostValue(name, tenant.slug, secret)}`);
  lines.push('', '# Local tweak, not managed by anyone', 'BACKUP_HOUR=3', '');
  return lines.join('\n');
}

function hostValue(name: string, slug: string, secret: () => string): string {
  if (name === 'NEWT_ID') return `${slug}-newt`;
  if (name === 'PANGOLIN_ENDPOINT') return 'https://pangolin.example.invalid';
  return secret();
}

function agentEnvFile(host: DemoHost, repoUrl: string, github: GitHubStandIn, healthTimeout: number, compose: string): string {
  return [
    '# flotilla-agent settings for this demo host (normally /etc/flotilla/agent.env)',
    `FLOTILLA_REPO=${repoUrl}`,
    `FLOTILLA_TENANT=${host.slug}`,
    `FLOTILLA_DIR=${host.installDir}`,
    `FLOTILLA_STATE_DIR=${host.stateDir}`,
    `FLOTILLA_GITHUB_API=${github.url}`,
    `FLOTILLA_GITHUB_TOKEN=${github.token}`,
    `FLOTILLA_GITHUB_REPO=${GITHUB_REPO}`,
    `FLOTILLA_COMPOSE=${compose}`,
    `FLOTILLA_HEALTH_TIMEOUT=${healthTimeout}`,
    '',
  ].join('\n');
}

/** Runs the whole demo; always stops what it started before returning. */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const bumpTenant = opts.bumpTenant ?? 'bnkops';
  const bumpTag = opts.bumpTag ?? 'v2.11.0';
  const started = Date.now();
  const dry = opts.mode === 'dry-run';
  const say = (line = '') => opts.out(`${line}\n`);
  const stamp = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
  let stepNo = 0;
  const step = (title: string) => say(`\n[${stamp()}] ${++stepNo}. ${title}`);
  const indent = (text: string, prefix = '    ') =>
    text
      .split('\n')
      .filter((l, i, all) => l.length > 0 || i < all.length - 1)
      .forEach((l) => say(`${prefix}${l}`));

  const result: DemoResult = { ok: false, mode: opts.mode, problems: [], tenants: [], bumped: bumpTenant, bumpTag, startedPids: [] };
  const cleanups: Array<{ what: string; run: () => Promise<void> }> = [];
  // After Ctrl-C, agents still in flight fail as their engine goes away: not news to anyone.
  let interrupted = false;
  const agentSay = (text: string) => {
    if (!interrupted) say(text);
  };
  const aborted = new Promise<never>((_, reject) => {
    if (opts.signal?.aborted) {
      interrupted = true;
      reject(new DemoAborted());
    }
    opts.signal?.addEventListener(
      'abort',
      () => {
        interrupted = true;
        reject(new DemoAborted());
      },
      { once: true },
    );
  });
  aborted.catch(() => undefined);
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted]);

  if (dry) {
    say('!! DRY RUN: no Docker engine here, so compose is NOT run.');
    for (const reason of opts.dryRunReasons ?? []) say(`!!   ${reason}`);
    say('!! Agents apply the rendered files into .demo/ and print the compose commands they would run;');
    say('!! no container is started and nothing is deployed.');
  }

  let live: LiveDemo | undefined;
  try {
    await guard(
      (async () => {
        await rm(opts.hostsDir, { recursive: true, force: true });
        await mkdir(opts.hostsDir, { recursive: true });
        await mkdir(opts.runDir, { recursive: true });
        const exampleFleet = await loadFleet(opts.repoRoot);
        const hostsTenants = exampleFleet.tenants.filter((t) => !t.paused);
        if (!exampleFleet.tenants.some((t) => t.slug === bumpTenant && !t.paused))
          throw new Error(`the tenant to bump, ${bumpTenant}, is not an unpaused tenant of the example fleet`);

        step('Starting a loopback git server (git http-backend on 127.0.0.1)');
        const gitServer: GitServer = await startGitServer({ root: join(opts.runDir, 'git') });
        cleanups.push({ what: `git server on 127.0.0.1:${gitServer.port}`, run: () => gitServer.stop() });
        await gitServer.createBareRepo(`${GITHUB_REPO}.git`);
        const repoUrl = gitServer.url(`${GITHUB_REPO}.git`);
        say(`    fleet repo: ${repoUrl}`);

        let engine: DockerEngine | undefined;
        let registry: Registry | undefined;
        let client: DockerClient | undefined;
        if (!dry) {
          step('Starting a private Docker engine and a loopback registry');
          engine = await startDockerEngine({ parentDir: opts.runDir });
          const e = engine;
          cleanups.push({ what: `dockerd (pid ${e.pid}) and its containers`, run: () => stopDockerEngine(e) });
          result.startedPids.push(engine.pid);
          say(`    dockerd pid ${engine.pid}, DOCKER_HOST=${engine.host}`);
          registry = await startRegistry({ parentDir: opts.runDir });
          const r = registry;
          cleanups.push({ what: `registry (pid ${r.pid})`, run: () => stopRegistry(r) });
          result.startedPids.push(registry.pid);
          say(`    docker-registry pid ${registry.pid} on ${registry.address}`);
          client = { host: engine.host, dockerConfig: engine.dockerConfig };

          const releaseTags = [...new Set([exampleFleet.defaults.imageTag, ...exampleFleet.tenants.map((t) => t.imageTag), bumpTag])].sort();
          const images = demoImageReferences(`${registry.address}/${REGISTRY_NAMESPACE}`, exampleFleet.defaults.images, releaseTags);
          step(`Building ${images.length} stand-in images (busybox; /VERSION holds the tag) and pushing them`);
          await pushDemoImages(images, { ...client, workDir: opts.runDir, onImage: (img) => say(`    pushed ${img.reference}`) });
        }

        step('Creating the fleet repo from the example fleet (fleet/ + templates/) and pushing main');
        const source = join(opts.runDir, 'source');
        const registryPrefix = registry ? `${registry.address}/${REGISTRY_NAMESPACE}` : undefined;
        const firstMain = await createSourceRepo(opts.repoRoot, source, repoUrl, registryPrefix);
        say(`    main is ${firstMain.slice(0, 12)}: ${exampleFleet.tenants.length} tenants (${exampleFleet.tenants.map((t) => `${t.slug}${t.paused ? ' paused' : ''}`).join(', ')})`);
        if (registryPrefix) say(`    fleet.yaml defaults.registry -> ${registryPrefix}`);

        step('Starting the GitHub stand-in (commit statuses, on loopback)');
        const github = await startGitHubStandIn({ repos: [GITHUB_REPO] });
        cleanups.push({ what: 'GitHub stand-in', run: () => github.close() });
        say(`    ${github.url} holds ${GITHUB_REPO}`);

        step(`Preparing one host folder per unpaused tenant under ${opts.hostsDir}`);
        const hosts: DemoHost[] = [];
        for (const tenant of hostsTenants) {
          const dir = join(opts.hostsDir, tenant.slug);
          const host: DemoHost = {
            slug: tenant.slug,
            mode: tenant.mode,
            dir,
            installDir: join(dir, 'install'),
            stateDir: join(dir, 'state'),
            envFile: join(dir, 'agent.env'),
            httpPort: await freeLoopbackPort(),
            seededEnv: '',
          };
          host.seededEnv = seededEnvFile(tenant, host.httpPort, () => randomBytes(24).toString('base64url'));
          await mkdir(host.installDir, { recursive: true });
          await mkdir(host.stateDir, { recursive: true });
          await writeFile(join(host.installDir, '.env'), host.seededEnv, { mode: 0o600 });
          await writeFile(host.envFile, agentEnvFile(host, repoUrl, github, opts.healthTimeoutSeconds ?? 90, 'docker-compose'), { mode: 0o600 });
          hosts.push(host);
          say(
            `    ${tenant.slug.padEnd(9)} ${tenant.mode.padEnd(8)} HTTP_PORT=${host.httpPort}` +
              (tenant.mode === 'adopted' ? `  (hand-written .env with ${tenant.hostEnv.length} host-held keys)` : ''),
          );
        }
        const paused = exampleFleet.tenants.filter((t) => t.paused).map((t) => t.slug);
        if (paused.length) say(`    no host for ${paused.join(', ')} (paused in the fleet)`);
        live = { tenants: hosts, bumped: bumpTenant, bumpTag, ...(client ? { docker: client } : {}) };

        const cli = async (args: string[], env: Record<string, string | undefined> = {}): Promise<number> => {
          say(`    $ flotilla ${args.join(' ')}`);
          const io: CliIo & { isTTY: boolean } = {
            stdout: (s) => void (interrupted || indent(s, '    | ')),
            stderr: (s) => void (interrupted || indent(s, '    ! ')),
            cwd: source,
            env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
            isTTY: true,
          };
          return runCli(args, io);
        };
        const must = async (args: string[], env?: Record<string, string | undefined>) => {
          const code = await cli(args, env);
          if (code !== 0) throw new Error(`flotilla ${args[0]} exited ${code}`);
        };
        const publishArgs = ['publish', '--repo', repoUrl, '--cache', join(opts.runDir, 'publish-cache')];
        const dryCompose = dry ? createDryRunCompose((line) => agentSay(`    ${line}`)) : undefined;
        const agentEnv: Record<string, string | undefined> = {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...(engine ? dockerEnv(engine) : {}),
        };
        const runAgents = async (): Promise<Map<string, PassOutcome>> => {
          const outcomes = new Map<string, PassOutcome>();
          await Promise.all(
            hosts.map(async (host) => {
              let outcome: PassOutcome = 'unknown';
              const code = await runAgentCli(['--settings', host.envFile, 'once'], {
                env: agentEnv,
                stdout: (s) => {
                  if (!interrupted) indent(s, `    ${host.slug} | `);
                },
                stderr: (s) => {
                  const m = /\boutcome: (applied|noop|refused|failed|error)\b/.exec(s);
                  if (m) outcome = m[1] as PassOutcome;
                  if (!interrupted) indent(stripLogPrefix(s), `    [${stamp()}] ${host.slug.padEnd(9)}| `);
                },
                ...(dryCompose ? { compose: dryCompose } : {}),
                // The stand-in is on loopback: the 1 s gap GitHub asks between writes would only slow the demo down.
                statusClient: { retry: { retries: 1, baseDelayMs: 200 }, throttle: { minWriteIntervalMs: 20 } },
              });
              if (code !== 0 && outcome === 'unknown') outcome = 'error';
              outcomes.set(host.slug, outcome);
            }),
          );
          return outcomes;
        };
        const versions = async (): Promise<Map<string, { version: string; container?: string }>> => {
          const out = new Map<string, { version: string; container?: string }>();
          for (const host of hosts) out.set(host.slug, client ? await apiVersion(client, host.slug) : await envTag(host));
          return out;
        };
        const statusEnv = { FLOTILLA_GITHUB_TOKEN: github.token, FLOTILLA_GITHUB_API_URL: github.url };
        const status = async () => {
          if (dry) say('    (DRY RUN: "converged" below means the agent applied the files; no container runs)');
          result.statusExitCode = await cli(['status', '--repo', GITHUB_REPO, '--fleet-url', repoUrl], statusEnv);
        };

        step('Publishing: flotilla publish renders every tenant and commits each to tenants/<slug>');
        say('    (a new fleet: every host gets its first install at once with --all-waves; a change later goes wave by wave)');
        await must([...publishArgs, '--all-waves']);

        step(`Running one agent per tenant (flotilla-agent once, ${hosts.length} in parallel)${dry ? ' [DRY RUN]' : ''}`);
        const first = await runAgents();
        const before = await versions();
        step(dry ? 'What each host is configured to run (IMAGE_TAG in its .env; DRY RUN: nothing runs)' : 'What each host runs now (docker exec <api> cat /VERSION)');
        for (const host of hosts) say(`    ${host.slug.padEnd(9)} ${before.get(host.slug)?.version ?? '-'}`);

        step('Fleet status (flotilla status)');
        await status();

        step(`Bumping ${bumpTenant} to ${bumpTag} (flotilla bump) and merging the branch into main`);
        const bumpLines: string[] = [];
        const bumpIo: CliIo = {
          stdout: (s) => {
            bumpLines.push(s);
            indent(s, '    | ');
          },
          stderr: (s) => indent(s, '    ! '),
          cwd: source,
          env: { PATH: process.env.PATH, HOME: process.env.HOME },
        };
        say(`    $ flotilla bump ${bumpTenant} --tag ${bumpTag}`);
        const bumpCode = await runCli(['bump', bumpTenant, '--tag', bumpTag], bumpIo);
        const branch = / on (\S+) and pushed/.exec(bumpLines.join(''))?.[1];
        if (bumpCode !== 0 || !branch) throw new Error(`flotilla bump exited ${bumpCode}`);
        const git = (...args: string[]) => execFileAsync('git', ['-C', source, ...args], { env: gitEnv() });
        await git('merge', '--quiet', '--ff-only', branch);
        await git('push', '--quiet', 'origin', 'main');
        say(`    merged ${branch} into main (what pressing Merge on its pull request does) and pushed main`);

        step('The plan for this change (flotilla plan): only the bumped tenant changes');
        const planArgs = ['plan', '--base', firstMain, '--head', 'main', ...(dry ? ['--no-registry-check'] : [])];
        const planCode = await cli(planArgs);
        if (planCode !== 0) throw new Error(`flotilla plan exited ${planCode}`);

        step('Publishing the change wave by wave: the first wave holding a changed tenant goes now');
        await must([...publishArgs, '--github-repo', GITHUB_REPO], statusEnv);

        step(`Running the agents again${dry ? ' [DRY RUN]' : ''}: ${bumpTenant} applies, the others have nothing to do`);
        const second = await runAgents();
        const after = await versions();
        step(dry ? 'What each host is configured to run now (DRY RUN)' : 'What each host runs now');
        for (const host of hosts) {
          const b = before.get(host.slug);
          const a = after.get(host.slug);
          const moved = b?.version !== a?.version;
          say(`    ${host.slug.padEnd(9)} ${(a?.version ?? '-').padEnd(8)} ${moved ? `(was ${b?.version})` : `(unchanged${host.slug === bumpTenant ? '!' : ''})`}`);
        }

        step('Fleet status (flotilla status)');
        await status();

        for (const host of hosts) {
          const b = before.get(host.slug);
          const a = after.get(host.slug);
          const report: TenantReport = { slug: host.slug, firstPass: first.get(host.slug) ?? 'unknown', secondPass: second.get(host.slug) ?? 'unknown' };
          if (b) report.versionBefore = b.version;
          if (a) report.versionAfter = a.version;
          if (b?.container) report.apiContainerBefore = b.container;
          if (a?.container) report.apiContainerAfter = a.container;
          result.tenants.push(report);
        }
        result.problems.push(...judge(result));
        if (opts.beforeCleanup) await opts.beforeCleanup(live);
      })(),
    );
    result.ok = result.problems.length === 0;
  } catch (e) {
    if (e instanceof DemoAborted) {
      say('\nInterrupted: stopping everything the demo started.');
    }
    else {
      say(`\nThe demo failed: ${(e as Error).message}`);
      result.problems.push((e as Error).message);
    }
  } finally {
    say(`\n[${stamp()}] Cleaning up`);
    for (const { what, run } of cleanups.reverse()) {
      try {
        await run();
        say(`    stopped ${what}`);
      } catch (e) {
        say(`    could not stop ${what}: ${(e as Error).message}`);
        result.problems.push(`cleanup: ${what}: ${(e as Error).message}`);
      }
    }
    await rm(opts.hostsDir, { recursive: true, force: true });
    await rm(opts.runDir, { recursive: true, force: true });
    say(`    removed ${opts.hostsDir} and ${opts.runDir}`);
  }
  if (interrupted) {
    say(`\nInterrupted after ${((Date.now() - started) / 1000).toFixed(0)} s; everything the demo started is stopped and its folders are gone.`);
    return result;
  }
  say(
    result.ok
      ? `\nDone in ${((Date.now() - started) / 1000).toFixed(0)} s${dry ? ' (DRY RUN: nothing was deployed)' : ''}: every tenant converged; ${bumpTenant} moved to ${bumpTag}, the others stayed; nothing is left running.`
      : `\nThe demo did not go as planned:\n${result.problems.map((p) => `  - ${p}`).join('\n')}`,
  );
  return result;
}

/** An agent log line without its timestamp and tenant (the demo prints its own). */
export function stripLogPrefix(text: string): string {
  return text
    .replace(/^\S+ flotilla-agent\[[^\]]+\] /gm, '')
    .replace(/^\[[^\]]+\] (?:INFO: )?(\w+: )?\[[^\]]+\] /gm, (_m, level: string | undefined) => level ?? '');
}

/** What should have happened, checked against what did. */
function judge(result: DemoResult): string[] {
  const problems: string[] = [];
  for (const t of result.tenants) {
    if (t.firstPass !== 'applied') problems.push(`${t.slug}: first agent pass was ${t.firstPass}, expected applied`);
    const bumped = t.slug === result.bumped;
    if (bumped) {
      if (t.secondPass !== 'applied') problems.push(`${t.slug}: second pass was ${t.secondPass}, expected applied`);
      if (t.versionAfter !== result.bumpTag) problems.push(`${t.slug}: runs ${t.versionAfter ?? 'nothing'}, expected ${result.bumpTag}`);
    } else {
      if (t.secondPass !== 'noop') problems.push(`${t.slug}: second pass was ${t.secondPass}, expected nothing to do`);
      if (t.versionAfter !== t.versionBefore) problems.push(`${t.slug}: version moved from ${t.versionBefore} to ${t.versionAfter}`);
      if (t.apiContainerAfter !== t.apiContainerBefore) problems.push(`${t.slug}: its api container was replaced`);
    }
  }
  if (result.statusExitCode !== 0) problems.push(`flotilla status exited ${result.statusExitCode}`);
  return problems;
}

/** The api container of a tenant's project and the /VERSION it reports. */
export async function apiVersion(client: DockerClient, project: string): Promise<{ version: string; container?: string }> {
  const ids = (
    await docker(
      ['ps', '--quiet', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=api'],
      client,
    )
  )
    .split(/\s+/)
    .filter(Boolean);
  if (ids.length !== 1) return { version: ids.length === 0 ? '(no api container)' : `(${ids.length} api containers)` };
  const version = (await docker(['exec', ids[0]!, 'cat', '/VERSION'], client)).trim();
  return { version, container: ids[0]! };
}

async function envTag(host: DemoHost): Promise<{ version: string }> {
  const text = await readFile(join(host.installDir, '.env'), 'utf8').catch(() => '');
  return { version: /^IMAGE_TAG=(.*)$/m.exec(text)?.[1] ?? '(not set)' };
}

if (isEntryPoint(import.meta.url)) {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const dryRun = process.env.FLOTILLA_DEMO_DRY_RUN === '1';
  const reasons = (process.env.FLOTILLA_DEMO_DRY_RUN_REASONS ?? '').split('\n').filter(Boolean);
  if (dryRun && reasons.length === 0) reasons.push('FLOTILLA_DEMO_DRY_RUN=1 asks for the dry run');
  const runDir = process.env.FLOTILLA_DEMO_RUN_DIR ?? (await mkdtemp(join(tmpdir(), 'flotilla-demo-')));
  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) process.stderr.write('demo: still cleaning up; demo.sh stops what is left after this\n');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await runDemo({
    mode: dryRun ? 'dry-run' : 'docker',
    dryRunReasons: reasons,
    repoRoot,
    hostsDir: join(repoRoot, '.demo'),
    runDir,
    out: (s) => void process.stdout.write(s),
    signal: stop.signal,
  });
  // In-process agents interrupted by Ctrl-C may hold timers; nothing is left to wait for.
  process.exit(stop.signal.aborted ? 130 : result.ok ? 0 : 1);
}
