// Faults of the git host, seen from the agent: the real `git http-backend` behind the
// loopback git server, made to go down, hang, answer 500 or cut a pack in half. In every
// case the running stack is kept as it is (the recording compose runner shows no `up` or
// `down`), no file of the install dir changes, and the next pass after the host is back
// applies the new commit. The daemon (`flotilla-agent run`) backs off while it fails.
import { createServer, request, type Server } from 'node:http';
import { lstat, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { parseAgentConfig } from '../../agent/config.js';
import { journalPath } from '../../agent/journal.js';
import { pollBackoffMs, runAgentCli } from '../../agent/main.js';
import { exitCodeOf, reconcileOnce, type ReconcileOutcome } from '../../agent/reconcile.js';
import { readState } from '../../agent/state.js';
import type { ServiceState } from '../../agent/compose-runner.js';
import { startGitServer, type GitRequestInfo, type GitServer } from '../support/git-server.js';
import { RecordingCompose } from '../support/recording-compose.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture } from '../support/tenant-fixture.js';
import { snapshotTree } from '../support/tree-snapshot.js';

const HEALTHY: ServiceState[] = [{ service: 'app', container: 'acme_app_1', state: 'running', health: 'healthy', image: 'app:v1' }];

/** What the git server does to the requests the agent makes; `none` serves normally. */
type Fault = 'none' | '500' | 'hang';

let git: GitServer;
let work: string;
let root: string;
let installDir: string;
let stateDir: string;
let fault: Fault = 'none';
/** Which upload-pack POSTs of a pass the fault hits: 0 = all (detect fails), 1 = from the second on (fetch fails). */
let spareFirstPosts = 0;
let postsThisPass = 0;
/** Hung requests, released at the end of a test so the server can stop. */
let releaseHung: Array<() => void> = [];
/** FLOTILLA_GIT_TIMEOUT: short while a test makes the server hang, generous otherwise (2 shared cores). */
let gitTimeout = '10';

async function beforeRequest(info: GitRequestInfo): Promise<void> {
  if (info.method === 'POST' && info.path.endsWith('/git-upload-pack')) postsThisPass += 1;
  if (fault === 'none') return;
  if (info.method === 'POST' && postsThisPass <= spareFirstPosts) return;
  if (info.method === 'GET' && spareFirstPosts > 0) return;
  if (fault === '500') throw new Error('injected: internal server error');
  await new Promise<void>((resolve) => releaseHung.push(resolve));
}

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-git-faults-'));
  root = join(work, 'git-root');
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  await mkdir(root);
  await mkdir(installDir);
  fault = 'none';
  spareFirstPosts = 0;
  gitTimeout = '10';
  git = await startGitServer({ root, beforeRequest });
  await git.createBareRepo('fleet.git');
});

afterEach(async () => {
  for (const release of releaseHung) release();
  releaseHung = [];
  await git.stop();
  await rm(work, { recursive: true, force: true });
});

let releaseCount = 0;
async function publish(imageTag: string, url = git.url('fleet.git')): Promise<string> {
  const sourceCommit = fakeSourceCommit(`git faults ${++releaseCount}`);
  const fixture = tenantFixture({
    tenant: 'acme',
    imageTag,
    registry: '127.0.0.1:5000',
    repository: 'flotilla-test/app',
    sourceCommit,
    configText: `release ${releaseCount}\n`,
  });
  await publishTenants({
    repoUrl: url,
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: 'acme', files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  return (await remoteBranchHead(url, 'tenants/acme'))!;
}

function settings(url: string, over: Record<string, string> = {}): Record<string, string> {
  return {
    FLOTILLA_REPO: url,
    FLOTILLA_TENANT: 'acme',
    FLOTILLA_DIR: installDir,
    FLOTILLA_STATE_DIR: stateDir,
    FLOTILLA_HEALTH_TIMEOUT: '1',
    FLOTILLA_GIT_TIMEOUT: gitTimeout,
    ...over,
  };
}

async function pass(compose: RecordingCompose, url = git.url('fleet.git')): Promise<{ outcome: ReconcileOutcome; log: string[] }> {
  postsThisPass = 0;
  const log: string[] = [];
  const outcome = await reconcileOnce({
    config: parseAgentConfig(settings(url)),
    compose,
    report: async () => undefined,
    log: (line) => void log.push(line),
    healthPollMs: 1,
  });
  return { outcome, log };
}

// Files only: a rollback may leave an empty folder it created behind, which is harmless.
const snapshot = (dir: string) => snapshotTree(dir, { dirs: false });

/** A host on v1 with v2 published: the starting point of every fault. */
async function hostOnV1WithV2Published(compose: RecordingCompose, url?: string) {
  const v1 = await publish('v1', url);
  const first = await pass(compose, url);
  expect(first.outcome, first.log.join('\n')).toMatchObject({ kind: 'applied' });
  const v2 = await publish('v2', url);
  return { v1, v2, files: await snapshot(installDir), calls: compose.calls.length };
}

/** The host is exactly where it was: same files, v1 recorded, no compose call, no journal. */
async function expectUntouched(compose: RecordingCompose, before: { v1: string; files: Record<string, string>; calls: number }) {
  expect(compose.ops.slice(before.calls)).toEqual([]);
  expect(await snapshot(installDir)).toEqual(before.files);
  expect((await readState(stateDir)).lastApplied?.commit).toBe(before.v1);
  expect(await lstat(journalPath(stateDir)).then(() => true, () => false)).toBe(false);
}

describe('the agent against a failing git host', () => {
  it.each([
    { fault: '500' as const, at: 'detect', spare: 0, message: /git unreachable: .*500/ },
    { fault: '500' as const, at: 'fetch', spare: 1, message: /fetch failed: .*500/ },
    { fault: 'hang' as const, at: 'detect', spare: 0, message: /git unreachable: .*no answer from the server within 1 s/ },
    { fault: 'hang' as const, at: 'fetch', spare: 1, message: /fetch failed: .*no answer from the server within 1 s/ },
  ])('keeps the stack when the server answers $fault at $at, and applies once it is back', async ({ fault: f, at, spare, message }) => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const before = await hostOnV1WithV2Published(compose);

    fault = f;
    spareFirstPosts = spare;
    if (f === 'hang') gitTimeout = '1';
    const failed = await pass(compose);
    gitTimeout = '10';

    // A failed ls-refs is a pass that could not run; a failed fetch of a known head is a fault of the host's, waited out.
    expect(failed.outcome.kind).toBe(at === 'detect' ? 'error' : 'waiting');
    expect(exitCodeOf(failed.outcome)).toBe(2);
    expect('description' in failed.outcome && failed.outcome.description).toMatch(message);
    // The wait is recorded as it is returned, and the commit is tried again.
    if (failed.outcome.kind === 'waiting') expect((await readState(stateDir)).lastAttempt).toMatchObject({ outcome: 'waiting', description: failed.outcome.description });
    await expectUntouched(compose, before);

    fault = 'none';
    const back = await pass(compose);

    expect(back.outcome).toMatchObject({ kind: 'applied', commit: before.v2 });
    expect(compose.ops.slice(before.calls)).toEqual(['config', 'pull', 'up', 'services']);
    expect((await readState(stateDir)).lastApplied?.commit).toBe(before.v2);
  });

  it('keeps the stack while the server is down (connection refused), and applies once it is back on the same port', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const before = await hostOnV1WithV2Published(compose);
    const port = git.port;

    await git.stop();
    const down = await pass(compose);

    expect(down.outcome.kind).toBe('error');
    expect('description' in down.outcome && down.outcome.description).toMatch(/git unreachable: .*ECONNREFUSED/);
    await expectUntouched(compose, before);

    git = await startGitServer({ root, port, beforeRequest });
    const back = await pass(compose);

    expect(back.outcome).toMatchObject({ kind: 'applied', commit: before.v2 });
  });

  it('keeps the stack when the connection is closed in the middle of the pack, and applies once a whole pack arrives', async () => {
    // A proxy in front of the git server that cuts the fetch's pack response in half.
    let cut = false;
    const proxy: Server = createServer((req, res) => {
      const upstream = request(
        { host: '127.0.0.1', port: git.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            const isPack = req.method === 'POST' && /PACK/.test(body.toString('latin1'));
            const headers = { ...up.headers };
            delete headers['transfer-encoding'];
            res.writeHead(up.statusCode ?? 502, { ...headers, 'content-length': String(body.length) });
            if (cut && isPack) {
              res.write(body.subarray(0, body.indexOf('PACK') + 40));
              res.socket?.destroy();
              return;
            }
            res.end(body);
          });
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
    const address = proxy.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/fleet.git`;
    try {
      const compose = new RecordingCompose({ services: HEALTHY });
      const before = await hostOnV1WithV2Published(compose, url);

      cut = true;
      const failed = await pass(compose, url);

      expect(failed.outcome).toMatchObject({ kind: 'waiting', reason: 'host-fault' });
      expect('description' in failed.outcome && failed.outcome.description).toMatch(/fetch failed/);
      await expectUntouched(compose, before);

      cut = false;
      const back = await pass(compose, url);

      expect(back.outcome).toMatchObject({ kind: 'applied', commit: before.v2 });
      expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toBe(`release ${releaseCount}\n`);
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});

describe('pollBackoffMs', () => {
  it('doubles per failure from the base, keeps a random half as jitter, and stops at the cap', () => {
    expect(pollBackoffMs(0, 1000, 8000, () => 1)).toBe(0);
    expect([1, 2, 3, 4, 5, 9].map((n) => pollBackoffMs(n, 1000, 8000, () => 1))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect([1, 2, 3, 4, 5].map((n) => pollBackoffMs(n, 1000, 8000, () => 0))).toEqual([500, 1000, 2000, 4000, 4000]);
    expect(pollBackoffMs(1000, 1000, 8000, () => 0.5)).toBe(6000);
  });
});

describe('flotilla-agent run while the git host fails', () => {
  it('skips polls with growing jittered waits, keeps the stack, and applies once the host answers again', async () => {
    const compose = new RecordingCompose({ services: HEALTHY });
    const before = await hostOnV1WithV2Published(compose);
    const lines: string[] = [];
    const stop = new AbortController();
    fault = '500';

    const failures = () => lines.filter((l) => / failed poll\(s\) in a row; waiting /.test(l));
    const daemon = runAgentCli(['run'], {
      env: settings(git.url('fleet.git'), {
        // Every second, so the test sees several skipped polls in a few seconds.
        FLOTILLA_SCHEDULE: '* * * * * *',
        FLOTILLA_JITTER: '0.001',
        FLOTILLA_BACKOFF: '1',
        FLOTILLA_BACKOFF_MAX: '2',
      }),
      stdout: (s) => void lines.push(s),
      stderr: (s) => void lines.push(s),
      compose,
      stopSignal: stop.signal,
    });
    const until = async (done: () => boolean) => {
      while (!done()) await new Promise((r) => setTimeout(r, 100));
    };
    try {
      await until(() => failures().length >= 3);
      const callsDuringOutage = compose.calls.length;
      fault = 'none';
      await until(() => lines.some((l) => /outcome: applied/.test(l)));
      stop.abort();
      expect(await daemon).toBe(0);

      expect(callsDuringOutage).toBe(before.calls);
      const waits = failures().map((l) => Number(/waiting ([\d.]+) s/.exec(l)![1]));
      // 1 s, then 2 s (the cap), each cut to a random point of its upper half.
      const caps = waits.map((_, i) => Math.min(2, 2 ** i));
      waits.forEach((w, i) => {
        expect(w).toBeGreaterThanOrEqual(caps[i]! / 2);
        expect(w).toBeLessThanOrEqual(caps[i]!);
      });
      expect(lines.some((l) => /backoff: poll skipped, next one after/.test(l))).toBe(true);
      expect(lines.some((l) => /backoff: poll succeeded after \d+ failed in a row/.test(l))).toBe(true);
      expect((await readState(stateDir)).lastApplied?.commit).toBe(before.v2);
    } finally {
      stop.abort();
      await daemon;
    }
  });
});
