// Hooks with simple argv commands (`sh -c ...`): runHooks on its own (environment, logs,
// rotation, the `compose` stand-in), then inside a reconcile pass with real git over
// HTTP and a recording compose runner. The same on the real engine: hooks.docker.test.ts.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HookFailedError } from '../renderer/core/errors.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, type ManifestHooks } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { recordedPass, type RecordedPass } from '../test/support/reconcile-pass.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { COMPOSE_ENV_ALLOWLIST } from './compose.js';
import type { ServiceState } from './compose-runner.js';
import { parseAgentConfig } from './config.js';
import { hookArgv, hookOutputDir, hookRunsDir, runHooks, type HookRunOptions } from './hooks.js';
import { AGENT_RUN_VARIABLE } from './exec.js';
import { exitCodeOf } from './reconcile.js';
import { readState } from './state.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];
const TOKENS = { FLOTILLA_GIT_TOKEN: 'git-token-5ecret', FLOTILLA_GITHUB_TOKEN: 'gh-token-5ecret', AWS_SECRET_ACCESS_KEY: 'aws-5ecret' };

let work: string;
let stateDir: string;
let installDir: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-hooks-'));
  stateDir = join(work, 'state');
  installDir = join(work, 'install');
  await mkdir(installDir, { recursive: true });
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

function options(over: Partial<HookRunOptions> = {}): HookRunOptions & { lines: string[] } {
  const lines: string[] = [];
  return {
    stateDir,
    dir: installDir,
    project: 'acme',
    composeCommand: async () => ['echo', 'host-compose'],
    env: { PATH: process.env.PATH, HOME: '/root', DOCKER_HOST: 'unix:///run/test.sock', ...TOKENS },
    log: (line) => void lines.push(line),
    lines,
    ...over,
  };
}

async function runLogs(name: string): Promise<string[]> {
  const dir = hookRunsDir(stateDir, name);
  return Promise.all((await readdir(dir)).sort().map((f) => readFile(join(dir, f), 'utf8')));
}

describe('runHooks', () => {
  it('runs with compose’s minimal environment: no agent token, the project name and an output folder', async () => {
    const opts = options();
    await runHooks('preSwap', [{ name: 'env', run: ['sh', '-c', 'env > "$FLOTILLA_HOOK_OUTPUT_DIR/env.txt"; pwd'] }], opts);
    const seen = await readFile(join(hookOutputDir(stateDir, 'env'), 'env.txt'), 'utf8');
    const names = seen.split('\n').filter(Boolean).map((l) => l.slice(0, l.indexOf('='))).filter((n) => n !== 'PWD' && n !== 'SHLVL' && n !== '_');
    expect(names.sort()).toEqual(
      ['COMPOSE_PROJECT_NAME', 'DOCKER_HOST', AGENT_RUN_VARIABLE, 'FLOTILLA_HOOK_NAME', 'FLOTILLA_HOOK_OUTPUT_DIR', 'FLOTILLA_HOOK_PHASE', 'HOME', 'PATH'].sort(),
    );
    // The run mark is no setting: it lets a restart find a hook a killed agent left running.
    for (const name of names) expect(name.startsWith('FLOTILLA_') ? name.startsWith('FLOTILLA_HOOK_') || name === AGENT_RUN_VARIABLE : (COMPOSE_ENV_ALLOWLIST as readonly string[]).includes(name) || name === 'COMPOSE_PROJECT_NAME').toBe(true);
    expect(seen).toContain('COMPOSE_PROJECT_NAME=acme\n');
    expect(seen).toContain('FLOTILLA_HOOK_PHASE=pre-swap\n');
    for (const secret of Object.values(TOKENS)) {
      expect(seen).not.toContain(secret);
      expect(opts.lines.join('\n')).not.toContain(secret);
    }
    // cwd is the install dir; the run log keeps argv, exit and output.
    const [log] = await runLogs('env');
    expect(log).toContain(`cwd: ${installDir}`);
    expect(log).toContain('exit: 0');
    expect(log).toContain(`--- stdout ---\n${installDir}\n`);
  });

  it('lets `compose` stand for the host’s compose command, as argv[0] and inside sh -c', async () => {
    expect(hookArgv(['compose', 'exec', '-T', 'db', 'true'], ['docker', 'compose'])).toEqual(['docker', 'compose', 'exec', '-T', 'db', 'true']);
    expect(hookArgv(['sh', '-c', 'compose ps'], ['docker-compose'])).toEqual(['sh', '-c', 'compose ps']);
    await runHooks('postUp', [{ name: 'direct', run: ['compose', 'ps', "it's"] }, { name: 'shell', run: ['sh', '-c', 'compose exec -T db "a b"'] }], options());
    expect((await runLogs('direct'))[0]).toContain("--- stdout ---\nhost-compose ps it's\n");
    expect((await runLogs('shell'))[0]).toContain('--- stdout ---\nhost-compose exec -T db a b\n');
  });

  it('stops at the first failure with its last output line, keeping the whole output in the run log', async () => {
    const opts = options();
    const err = await runHooks(
      'postUp',
      [
        { name: 'migrate', run: ['sh', '-c', 'echo applying 0042; echo "ERROR: column exists" >&2; exit 3'] },
        { name: 'smoke', run: ['sh', '-c', 'echo never > "$FLOTILLA_HOOK_OUTPUT_DIR/ran"'] },
      ],
      opts,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HookFailedError);
    expect((err as HookFailedError).message).toBe('post-up hook migrate failed: ERROR: column exists');
    const log = await readFile((err as HookFailedError).logFile, 'utf8');
    expect(log).toContain('exit: 3');
    expect(log).toContain('applying 0042');
    await expect(readdir(hookOutputDir(stateDir, 'smoke'))).rejects.toThrow(/ENOENT/);
  });

  it('says a silent failure’s exit code and a timeout', async () => {
    await expect(runHooks('preSwap', [{ name: 'quiet', run: ['sh', '-c', 'exit 4'] }], options())).rejects.toThrow('pre-swap hook quiet failed: exit code 4');
    await expect(runHooks('preSwap', [{ name: 'slow', run: ['sleep', '30'], timeoutSeconds: 1 }], options())).rejects.toThrow(
      'pre-swap hook slow failed: timed out after 1 s',
    );
  });

  it('keeps the newest `keep` files of a hook’s output folder', async () => {
    const dump = { name: 'dump', keep: 3, run: ['sh', '-c', 'echo "rows $N" > "$FLOTILLA_HOOK_OUTPUT_DIR/dump-$(cat "$HOME/n").sql"'] };
    const home = join(work, 'home');
    await mkdir(home);
    for (let n = 1; n <= 5; n++) {
      await writeFile(join(home, 'n'), String(n));
      await runHooks('preSwap', [dump], options({ env: { PATH: process.env.PATH, HOME: home } }));
    }
    expect((await readdir(hookOutputDir(stateDir, 'dump'))).sort()).toEqual(['dump-3.sql', 'dump-4.sql', 'dump-5.sql']);
    expect(await runLogs('dump')).toHaveLength(5);
  });

  it('never loses the last good dump to failed runs: a failed run’s files are removed and do not count toward `keep`', async () => {
    // Run n writes dump-n.sql; runs 3-5 write part of it (and overwrite latest.sql) and then fail, as a dump of a database in trouble does.
    const dump = {
      name: 'dump',
      keep: 2,
      run: ['sh', '-c', 'n=$(cat "$HOME/n"); echo "rows $n" > "$FLOTILLA_HOOK_OUTPUT_DIR/dump-$n.sql"; echo "rows $n" > "$FLOTILLA_HOOK_OUTPUT_DIR/latest.sql"; test ! -f "$HOME/fail" || { echo "pg_dump: connection lost" >&2; exit 1; }'],
    };
    const home = join(work, 'home');
    await mkdir(home);
    const run = async (n: number, fail: boolean) => {
      await writeFile(join(home, 'n'), String(n));
      if (fail) await writeFile(join(home, 'fail'), '');
      else await rm(join(home, 'fail'), { force: true });
      const opts = options({ env: { PATH: process.env.PATH, HOME: home } });
      const err = await runHooks('preSwap', [dump], opts).then(() => undefined, (e: unknown) => e);
      return { err, lines: opts.lines };
    };
    const files = async () => {
      const dir = hookOutputDir(stateDir, 'dump');
      const names = (await readdir(dir)).sort();
      return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n), 'utf8')] as const)));
    };
    for (const n of [1, 2]) expect((await run(n, false)).err).toBeUndefined();
    const good = { 'dump-1.sql': 'rows 1\n', 'dump-2.sql': 'rows 2\n', 'latest.sql': 'rows 2\n' };
    // keep 2 counted files: dump-1.sql went when run 2 added two.
    const { 'dump-1.sql': _gone, ...afterTwo } = good;
    expect(await files()).toEqual(afterTwo);
    for (const n of [3, 4, 5]) {
      const { err, lines } = await run(n, true);
      expect((err as HookFailedError).message).toBe('pre-swap hook dump failed: pg_dump: connection lost');
      expect(lines.join('\n')).toContain('removed the 2 file(s) it wrote');
      expect(lines.join('\n')).not.toContain('rotated out');
      expect(await files()).toEqual(afterTwo);
    }
    expect(await runLogs('dump')).toHaveLength(5);
    // The next good run counts, and rotates out only good files older than it.
    expect((await run(6, false)).err).toBeUndefined();
    expect(await files()).toEqual({ 'dump-6.sql': 'rows 6\n', 'latest.sql': 'rows 6\n' });
  });
});

// ---- inside a reconcile pass ----

let git: GitServer;
let releases = 0;
beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});

describe('hooks in a reconcile pass', () => {
  let repo: string;
  beforeEach(async () => {
    await git.createBareRepo(`hooks-${++releases}.git`);
    repo = git.url(`hooks-${releases}.git`);
  });

  async function publish(imageTag: string, hooks?: ManifestHooks): Promise<string> {
    const sourceCommit = fakeSourceCommit(`hooks ${releases} ${imageTag} ${Math.random()}`);
    const fixture = tenantFixture({ tenant: 'acme', imageTag, registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit });
    if (hooks) fixture.manifest.hooks = hooks;
    const files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(fixture.manifest) } : f));
    await publishTenants({ repoUrl: repo, workDir: join(work, 'publish.git'), tenants: [{ slug: 'acme', files }], source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit } });
    return (await remoteBranchHead(repo, 'tenants/acme'))!;
  }

  async function pass(compose: RecordingCompose): Promise<RecordedPass> {
    const config = parseAgentConfig({
      FLOTILLA_REPO: repo,
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: stateDir,
      FLOTILLA_HEALTH_TIMEOUT: '1',
      ...TOKENS,
    });
    return recordedPass({
      config,
      compose,
      hookEnv: { PATH: process.env.PATH, HOME: work, ...TOKENS },
      composeCommand: ['echo', 'compose'],
    });
  }

  const copyConf = (file: string) => ['sh', '-c', `cat config/app.conf > "$FLOTILLA_HOOK_OUTPUT_DIR/${file}"`];

  it('skips pre-swap hooks on a first apply, then dumps the old stack before the swap and checks the new one after up', async () => {
    const hooks = { preSwap: [{ name: 'dump', run: copyConf('before.conf') }], postUp: [{ name: 'check', run: copyConf('after.conf') }] };
    await publish('v1', hooks);
    const compose = new RecordingCompose({ services: HEALTHY });
    const first = await pass(compose);
    expect(first.outcome.kind).toBe('applied');
    expect(first.log).toContain('pre-swap hooks: skipped dump: no stack installed yet, nothing to run them against');
    await expect(readdir(hookOutputDir(stateDir, 'dump'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(hookOutputDir(stateDir, 'check'), 'after.conf'), 'utf8')).toContain('version = v1');

    await publish('v2', hooks);
    const second = await pass(compose);
    expect(second.outcome.kind).toBe('applied');
    expect(await readFile(join(hookOutputDir(stateDir, 'dump'), 'before.conf'), 'utf8')).toContain('version = v1');
    expect(await readFile(join(hookOutputDir(stateDir, 'check'), 'after.conf'), 'utf8')).toContain('version = v2');
    const order = second.log.filter((l) => /^(pull|swap|up|pre-swap hook|post-up hook)/.test(l)).map((l) => l.split(':')[0]);
    expect(order).toEqual(['pull', 'pre-swap hooks', 'pre-swap hook dump', 'pre-swap hook dump', 'swap', 'up', 'post-up hook check', 'post-up hook check']);
  });

  it('refuses the apply when a pre-swap hook fails, changing nothing, and retries it quietly until it passes', async () => {
    await publish('v1');
    const compose = new RecordingCompose({ services: HEALTHY });
    expect((await pass(compose)).outcome.kind).toBe('applied');
    const before = await readFile(join(installDir, 'config/app.conf'), 'utf8');
    const ok = join(work, 'disk-has-space');
    const head = await publish('v2', {
      preSwap: [{ name: 'dump', run: ['sh', '-c', `test -f ${ok} || { echo "pg_dump: no space left on device" >&2; exit 1; }`] }],
    });

    compose.calls.length = 0;
    const refused = await pass(compose);
    expect(refused.outcome).toMatchObject({ kind: 'refused', commit: head, description: 'refused: pre-swap hook dump failed: pg_dump: no space left on device' });
    expect(refused.statuses).toEqual(['pending: applying v2', 'failure: refused: pre-swap hook dump failed: pg_dump: no space left on device']);
    expect(compose.ops).toEqual(['config', 'pull']);
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toBe(before);
    expect((await readState(stateDir)).lastApplied?.manifest.imageTag).toBe('v1');
    expect(await readdir(join(work, '.install.flotilla-staging')).catch(() => 'gone')).toBe('gone');
    expect((await runLogs('dump'))[0]).toContain('pg_dump: no space left on device');

    const again = await pass(compose);
    expect(again.outcome.kind).toBe('refused');
    expect(again.statuses).toEqual([]);

    await writeFile(ok, '');
    const fixed = await pass(compose);
    expect(fixed.outcome.kind).toBe('applied');
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toContain('version = v2');
  });

  it('records the refusal it returns when a pre-swap hook fails: one outcome, in the state and to the caller, exit 3', async () => {
    await publish('v1');
    const compose = new RecordingCompose({ services: HEALTHY });
    expect((await pass(compose)).outcome.kind).toBe('applied');
    const head = await publish('v2', { preSwap: [{ name: 'dump', run: ['sh', '-c', 'echo "pg_dump: connection refused" >&2; exit 1'] }] });

    for (let poll = 0; poll < 2; poll++) {
      const { outcome } = await pass(compose);
      const description = 'refused: pre-swap hook dump failed: pg_dump: connection refused';
      expect(outcome).toEqual({ kind: 'refused', commit: head, description, missing: [], hook: 'dump' });
      expect(exitCodeOf(outcome)).toBe(3);
      expect((await readState(stateDir)).lastAttempt).toMatchObject({ commit: head, outcome: outcome.kind, description, hook: 'dump' });
    }
  });

  it('rolls back when a post-up hook fails, as a failed health check does', async () => {
    await publish('v1');
    const compose = new RecordingCompose({ services: HEALTHY });
    expect((await pass(compose)).outcome.kind).toBe('applied');
    const head = await publish('v2', { postUp: [{ name: 'migrate', run: ['sh', '-c', 'echo "migration 0042 failed" >&2; exit 1'] }] });

    compose.calls.length = 0;
    const failed = await pass(compose);
    expect(failed.outcome).toMatchObject({ kind: 'failed', commit: head, step: 'post-up hooks' });
    const description = (failed.outcome as { description: string }).description;
    expect(description).toMatch(/^post-up hook migrate failed: migration 0042 failed; rolled back, previous stack 1\/1 healthy$/);
    expect(failed.statuses.at(-1)).toBe(`failure: ${description}`);
    // up with v2, then up with the restored v1 files.
    const ups = compose.calls.filter((c) => c.op === 'up');
    expect(ups.map((c) => /IMAGE_TAG=(\S+)/.exec(c.files['.env'] ?? '')?.[1])).toEqual(['v2', 'v1']);
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toContain('version = v1');
    const state = await readState(stateDir);
    expect(state.lastApplied?.manifest.imageTag).toBe('v1');
    expect(state.lastAttempt).toMatchObject({ commit: head, outcome: 'held' });
    // A commit that failed after the swap is not retried until the branch moves.
    expect((await pass(compose)).outcome.kind).toBe('noop');
    expect(await lstat(join(stateDir, 'hooks', 'migrate', 'runs')).then((s) => s.isDirectory())).toBe(true);
  });
});
