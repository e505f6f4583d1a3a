// Maintenance windows in the reconcile pass, with an injected clock: outside the window
// a new commit is fetched but held (a `waiting` outcome, recorded as it is returned; one
// `pending` "waiting for window (opens …)", nothing touched on the host), applied on the
// first poll once the window opens, and applied at once with the `--now` override
// (ignoreWindow). Real git over the loopback server; compose is recorded.
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SettingError } from '../renderer/core/errors.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../test/support/tenant-fixture.js';
import { parseAgentConfig } from './config.js';
import { exitCodeOf, reconcileOnce, type StatusUpdate } from './reconcile.js';
import { readState } from './state.js';

let git: GitServer;
let work: string;
let installDir: string;
let repoUrl: string;
let n = 0;

beforeAll(async () => {
  git = await startGitServer();
});
afterAll(async () => {
  await git.stop();
});
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-window-'));
  installDir = join(work, 'install');
  await mkdir(installDir);
  await git.createBareRepo(`fleet-${++n}.git`);
  repoUrl = git.url(`fleet-${n}.git`);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function publish(opts: { windows?: string[] } = {}): Promise<{ commit: string; source: string }> {
  const source = fakeSourceCommit(`window ${n}`);
  const fixture = tenantFixture({ tenant: 'acme', imageTag: 'v1', registry: '127.0.0.1:5000', repository: 'flotilla-test/app', sourceCommit: source });
  if (opts.windows) {
    // The window the fleet declares for the tenant travels in its manifest.
    fixture.manifest.windows = opts.windows;
    fixture.files = fixture.files.map((f) => (f.path === MANIFEST_PATH ? { ...f, content: serializeManifest(fixture.manifest) } : f));
  }
  await publishTenants({ repoUrl, workDir: join(work, 'publish.git'), tenants: [{ slug: 'acme', files: fixture.files }], source: { repo: FIXTURE_SOURCE_REPO, commit: source } });
  return { commit: (await remoteBranchHead(repoUrl, 'tenants/acme'))!, source };
}

// Sunday 02:00-05:00 in Berlin; 2025-06-07 is a Saturday, Berlin is UTC+2 in June.
const WINDOW = 'Sun 02:00-05:00 Europe/Berlin';
const SATURDAY_NOON = new Date('2025-06-07T12:00:00Z');
const SUNDAY_0230_BERLIN = new Date('2025-06-08T00:30:00Z');

async function pass(compose: RecordingCompose, now: Date, opts: { ignoreWindow?: boolean; hostWindow?: string | null } = {}) {
  const statuses: StatusUpdate[] = [];
  const { hostWindow = WINDOW, ...deps } = opts;
  const outcome = await reconcileOnce({
    config: parseAgentConfig({
      FLOTILLA_REPO: repoUrl,
      FLOTILLA_TENANT: 'acme',
      FLOTILLA_DIR: installDir,
      FLOTILLA_STATE_DIR: join(work, 'state'),
      FLOTILLA_HEALTH_TIMEOUT: '1',
      ...(hostWindow ? { FLOTILLA_WINDOW: hostWindow } : {}),
    }),
    compose,
    report: async (u) => void statuses.push(u),
    log: () => undefined,
    healthPollMs: 1,
    now: () => now,
    ...deps,
  });
  return { outcome, statuses };
}

const HEALTHY = [{ service: 'app', container: 'acme_app_1', state: 'running' as const, health: 'healthy' as const, image: 'app:v1' }];

describe('maintenance window hold', () => {
  it('holds a new commit outside the window, says when it opens, and applies once it is open', async () => {
    const { commit, source } = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });

    const held = await pass(compose, SATURDAY_NOON);
    const waiting = 'waiting for window (opens Sun 02:00 Europe/Berlin (2025-06-08T00:00Z))';
    expect(held.outcome).toEqual({ kind: 'waiting', commit, reason: 'window', description: waiting });
    expect(exitCodeOf(held.outcome)).toBe(0);
    expect(held.statuses).toEqual([{ tenantCommit: commit, sourceCommit: source, state: 'pending', description: waiting }]);
    expect(compose.calls).toEqual([]);
    expect(await readdir(installDir)).toEqual([]);

    // Polls while it is still closed say nothing new.
    const again = await pass(compose, new Date('2025-06-07T20:00:00Z'));
    expect(again.outcome).toEqual(held.outcome);
    expect(again.statuses).toEqual([]);

    const open = await pass(compose, SUNDAY_0230_BERLIN);
    expect(open.outcome).toEqual({ kind: 'applied', commit, description: 'v1 up, 1/1 healthy' });
    expect(open.statuses.map((s) => `${s.state}: ${s.description}`)).toEqual(['pending: applying v1', 'success: v1 up, 1/1 healthy']);
    expect(compose.ops).toEqual(['config', 'pull', 'up', 'services']);
    expect((await readState(join(work, 'state'))).lastApplied?.commit).toBe(commit);
  });

  it('holds by the window the fleet declares (from the manifest) when the host sets none', async () => {
    const { commit } = await publish({ windows: [WINDOW] });
    const compose = new RecordingCompose({ services: HEALTHY });
    const held = await pass(compose, SATURDAY_NOON, { hostWindow: null });
    expect(held.outcome).toMatchObject({ kind: 'waiting', commit, reason: 'window' });
    expect(held.statuses[0]?.description).toMatch(/^waiting for window/);
    expect(compose.calls).toEqual([]);
    const open = await pass(compose, SUNDAY_0230_BERLIN, { hostWindow: null });
    expect(open.outcome).toMatchObject({ kind: 'applied', commit });
  });

  it('records the wait it returns: one outcome, in the state and to the caller, on every poll while closed', async () => {
    const { commit } = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    for (const at of [SATURDAY_NOON, new Date('2025-06-07T20:00:00Z')]) {
      const { outcome } = await pass(compose, at);
      expect(outcome.kind).toBe('waiting');
      const recorded = (await readState(join(work, 'state'))).lastAttempt;
      expect(recorded).toEqual({ commit, outcome: outcome.kind, description: 'description' in outcome && outcome.description, at: at.toISOString() });
    }
  });

  it('applies outside the window with the --now override', async () => {
    const { commit } = await publish();
    const compose = new RecordingCompose({ services: HEALTHY });
    const { outcome } = await pass(compose, SATURDAY_NOON, { ignoreWindow: true });
    expect(outcome).toMatchObject({ kind: 'applied', commit });
  });

  it('rejects a malformed FLOTILLA_WINDOW at start, naming the setting', () => {
    expect(() => parseAgentConfig({ FLOTILLA_REPO: 'http://127.0.0.1/x.git', FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: '/srv', FLOTILLA_WINDOW: 'Sun 2-5' })).toThrow(SettingError);
    expect(() => parseAgentConfig({ FLOTILLA_REPO: 'http://127.0.0.1/x.git', FLOTILLA_TENANT: 'acme', FLOTILLA_DIR: '/srv', FLOTILLA_WINDOW: 'Sun 2-5' })).toThrow(/^FLOTILLA_WINDOW: /);
  });
});
