// Publish and change-detection benchmarks against the loopback git server.
//   benchPublish:   1,000 tenants, one changed: time beyond rendering, commits, pushes;
//                   then all 1,000 changed (a fleet-wide tag): one push per PUSH_BATCH_SIZE branches.
//   benchNoopPoll:  the agent's "anything new?" check on a repo with 1,000 tenant branches,
//                   beside `git ls-remote` of the same branch in the same run.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, sha256, type RenderedFile } from '../renderer/core/manifest.js';
import { PUSH_BATCH_SIZE } from '../renderer/core/receive-pack.js';
import { publishTenants, type PublishTenant } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { benchRow, median, type BenchRow } from './bench-row.js';

const execFileAsync = promisify(execFile);
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir() };
const TENANTS = 1000;
const SOURCE = { repo: 'acme/fleet', commit: 'a'.repeat(40) };

const slugOf = (i: number) => `tenant-${String(i).padStart(4, '0')}`;

/** About eight small files per tenant, shaped like the real stack's render. */
export function syntheticTenant(i: number, imageTag: string): PublishTenant {
  const slug = slugOf(i);
  const domain = `${slug}.fleet.example.com`;
  const files: RenderedFile[] = [
    {
      path: 'docker-compose.yml',
      content: `# ${slug}\nservices:\n  api:\n    image: registry.example/api:\${IMAGE_TAG:-${imageTag}}\n  admin:\n    image: registry.example/admin:\${IMAGE_TAG:-${imageTag}}\n  postgres:\n    image: postgres:16\n  redis:\n    image: redis:7\n`,
      mode: 0o644,
    },
    { path: 'nginx/conf.d/default.conf', content: `server { listen 80; server_name ${domain}; }\n`, mode: 0o644 },
    { path: 'nginx/conf.d/api.conf', content: `server { server_name api.${domain}; location / { proxy_pass http://api:8080; } }\n`, mode: 0o644 },
    { path: 'nginx/conf.d/services.conf', content: `# services for ${slug}\n`, mode: 0o644 },
    { path: 'configs/prometheus/prometheus.yml', content: `scrape_configs:\n  - job_name: ${slug}-api\n    static_configs: [{targets: ['api:9100']}]\n`, mode: 0o644 },
    { path: 'configs/pangolin/resources.yml', content: `resources:\n  - host: ${domain}\n    target: nginx:80\n`, mode: 0o644 },
    { path: 'scripts/healthcheck.sh', content: '#!/bin/sh\nwget -q -O- http://127.0.0.1/health\n', mode: 0o755 },
  ];
  const manifest = {
    schemaVersion: 1,
    tenant: slug,
    imageTag,
    source: SOURCE,
    files: files.map((f) => ({ path: f.path, sha256: sha256(f.content), mode: f.mode })),
  };
  return { slug, files: [...files, { path: MANIFEST_PATH, content: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o644 }] };
}

/**
 * Seeds a bare repo with one branch per tenant in a single `git fast-import`
 * (1,000 pushes would measure the setup, not publish). Git builds these trees
 * itself, so publish finding them unchanged also checks its in-memory hashing.
 */
export async function seedWithFastImport(bare: string, tenants: PublishTenant[], prefix: string): Promise<void> {
  const chunks: Buffer[] = [];
  const data = (content: string | Uint8Array) => {
    const bytes = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
    chunks.push(Buffer.from(`data ${bytes.length}\n`), bytes, Buffer.from('\n'));
  };
  const when = `${Math.floor(Date.now() / 1000)} +0000`;
  chunks.push(Buffer.from(`reset refs/heads/main\ncommit refs/heads/main\ncommitter Seed <seed@localhost> ${when}\n`));
  data('fleet\n');
  chunks.push(Buffer.from('M 100644 inline README\n'));
  data('fleet repo\n');
  for (const tenant of tenants) {
    chunks.push(Buffer.from(`commit refs/heads/${prefix}${tenant.slug}\ncommitter Seed <seed@localhost> ${when}\n`));
    data(`seed ${tenant.slug}\n`);
    for (const file of tenant.files) {
      chunks.push(Buffer.from(`M ${file.mode === 0o755 ? '100755' : '100644'} inline ${file.path}\n`));
      data(file.content);
    }
  }
  await new Promise<void>((resolve, reject) => {
    const child = spawn('git', ['--git-dir', bare, 'fast-import', '--quiet'], { env: gitEnv, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git fast-import exited ${code}: ${stderr}`))));
    child.stdin.end(Buffer.concat(chunks));
  });
}

async function withServer<T>(work: (server: GitServer, url: string, bare: string, tmp: string) => Promise<T>): Promise<T> {
  const tmp = await mkdtemp(join(tmpdir(), 'flotilla-bench-'));
  const server = await startGitServer({ root: join(tmp, 'repos') });
  try {
    const bare = await server.createBareRepo('fleet.git');
    return await work(server, server.url('fleet.git'), bare, tmp);
  } finally {
    await server.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

const receivePackPosts = (server: GitServer) => server.stats().byPath['POST /fleet.git/git-receive-pack']?.requests ?? 0;

export async function benchPublish(): Promise<BenchRow[]> {
  return withServer(async (server, url, bare, tmp) => {
    const prefix = 'tenants/';
    const base = Array.from({ length: TENANTS }, (_, i) => syntheticTenant(i, 'v2.10.2'));
    await seedWithFastImport(bare, base, prefix);
    const workDir = join(tmp, 'publish-cache.git');

    // Cold cache: fetch every branch tip, find nothing to do.
    server.resetStats();
    let started = performance.now();
    const cold = await publishTenants({ repoUrl: url, workDir, tenants: base, source: SOURCE, branchPrefix: prefix });
    const coldMs = performance.now() - started;
    const coldPushes = receivePackPosts(server);

    // Warm cache, one tenant changed (a new tag each round), as after a merged bump.
    const times: number[] = [];
    let commits = 0;
    let pushes = 0;
    for (let round = 1; round <= 3; round++) {
      const tenants = base.map((t, i) => (i === 500 ? syntheticTenant(i, `v2.11.${round}`) : t));
      server.resetStats();
      started = performance.now();
      const result = await publishTenants({ repoUrl: url, workDir, tenants, source: SOURCE, branchPrefix: prefix });
      times.push(performance.now() - started);
      commits = Math.max(commits, result.committed.length);
      pushes = Math.max(pushes, receivePackPosts(server));
    }
    const ms = median(times);

    // A fleet-wide change (a new default tag): every branch gets a commit, still one push.
    const everyone = base.map((_, i) => syntheticTenant(i, 'v3.0.0'));
    server.resetStats();
    started = performance.now();
    const wide = await publishTenants({ repoUrl: url, workDir, tenants: everyone, source: SOURCE, branchPrefix: prefix });
    const wideMs = performance.now() - started;
    const widePushes = receivePackPosts(server);
    const widePushesExpected = Math.ceil(TENANTS / PUSH_BATCH_SIZE);
    return [
      benchRow({
        name: `publish ${TENANTS} tenants, 1 changed: time beyond render`,
        unit: 'ms',
        value: Math.round(ms),
        baseline: null,
        target: '< 1000 ms',
        met: ms < 1000,
      }),
      benchRow({ name: `publish ${TENANTS} tenants, 1 changed: commits`, unit: 'commits', value: commits, baseline: null, target: '1', met: commits === 1 }),
      benchRow({ name: `publish ${TENANTS} tenants, 1 changed: pushes`, unit: 'pushes', value: pushes, baseline: null, target: '1', met: pushes === 1 }),
      benchRow({
        name: `publish ${TENANTS} tenants, nothing changed, cold cache`,
        unit: 'ms',
        value: Math.round(coldMs),
        baseline: null,
        target: 'no commit, no push',
        met: cold.committed.length === 0 && cold.unchanged.length === TENANTS && coldPushes === 0,
      }),
      benchRow({
        name: `publish ${TENANTS} tenants, all changed: time beyond render (${wide.committed.length} commits, ${widePushes} pushes)`,
        unit: 'ms',
        value: Math.round(wideMs),
        baseline: null,
        target: `< 10000 ms; ${TENANTS} commits in ${widePushesExpected} pushes of ${PUSH_BATCH_SIZE} branches`,
        met: wideMs < 10_000 && wide.committed.length === TENANTS && widePushes === widePushesExpected,
      }),
    ];
  });
}

export async function benchNoopPoll(): Promise<BenchRow[]> {
  return withServer(async (server, url, bare) => {
    const prefix = 'tenants/';
    // Same tiny tree for every branch: the number of refs is what matters here.
    const tenants = Array.from({ length: TENANTS }, (_, i) => ({
      slug: slugOf(i),
      files: [{ path: 'docker-compose.yml', content: `# ${slugOf(i)}\n`, mode: 0o644 }],
    }));
    await seedWithFastImport(bare, tenants, prefix);
    const branch = `${prefix}${slugOf(500)}`;
    const rounds = 21;

    const expected = (await execFileAsync('git', ['--git-dir', bare, 'rev-parse', `refs/heads/${branch}`])).stdout.trim();
    const oursPoll = async () => {
      if ((await remoteBranchHead(url, branch)) !== expected) throw new Error(`remoteBranchHead(${branch}) is wrong`);
    };
    const lsRemotePoll = async () => {
      const { stdout } = await execFileAsync('git', ['ls-remote', url, `refs/heads/${branch}`], { env: gitEnv });
      if (!stdout.startsWith(expected)) throw new Error(`git ls-remote ${branch} is wrong`);
    };
    /** Requests and bytes of one poll, from the server's counters. */
    const wire = async (poll: () => Promise<unknown>) => {
      await poll(); // warm up (module loading, page cache)
      server.resetStats();
      await poll();
      const stats = server.stats();
      return { bytes: stats.bytesIn + stats.bytesOut, requests: stats.requests };
    };
    const oursWire = await wire(oursPoll);
    const lsRemoteWire = await wire(lsRemotePoll);
    // Timed rounds alternate between the two, so load from anything else on the
    // machine lands on both alike.
    const oursTimes: number[] = [];
    const lsRemoteTimes: number[] = [];
    const time = async (poll: () => Promise<unknown>, into: number[]) => {
      const started = performance.now();
      await poll();
      into.push(performance.now() - started);
    };
    for (let i = 0; i < rounds; i++) {
      await time(oursPoll, oursTimes);
      await time(lsRemotePoll, lsRemoteTimes);
    }
    const ours = { ms: median(oursTimes), ...oursWire };
    const lsRemote = { ms: median(lsRemoteTimes), ...lsRemoteWire };

    return [
      benchRow({
        name: `no-op poll (${TENANTS} branches): time`,
        unit: 'ms',
        value: Number(ours.ms.toFixed(1)),
        baseline: Number(lsRemote.ms.toFixed(1)),
        target: 'no slower than git ls-remote',
        met: ours.ms <= lsRemote.ms,
      }),
      benchRow({
        name: `no-op poll (${TENANTS} branches): bytes on the wire`,
        unit: 'bytes',
        value: Math.round(ours.bytes),
        baseline: Math.round(lsRemote.bytes),
        target: '< 2048 bytes',
        met: ours.bytes < 2048,
      }),
      benchRow({
        name: `no-op poll (${TENANTS} branches): requests`,
        unit: 'requests',
        value: ours.requests,
        baseline: lsRemote.requests,
        target: '2',
        met: ours.requests === 2,
      }),
    ];
  });
}
