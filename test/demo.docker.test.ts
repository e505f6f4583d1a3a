// `npm start` on real parts: runDemo (what scripts/demo.ts runs) with its own private
// dockerd, loopback registry, git server and GitHub stand-in, inside the test run's
// network namespace. Checked the way a person would: the containers of every tenant,
// the version each api container reports, the hosts' .env files, and `ps` afterwards.
import { readFileSync } from 'node:fs';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, type DockerClient } from './support/images.js';
import { runDemo, type DemoHost, type DemoResult, type LiveDemo } from '../scripts/demo.js';

const REPO_ROOT = join(import.meta.dirname, '..');

interface Seen {
  /** Per tenant: service -> container health, and the api container's /VERSION. */
  stacks: Map<string, { services: Map<string, string>; version: string }>;
  envFiles: Map<string, string>;
  hosts: DemoHost[];
}

let work: string;
let result: DemoResult;
let output = '';
let seen: Seen | undefined;

async function look(live: LiveDemo): Promise<Seen> {
  const client: DockerClient = live.docker!;
  const stacks = new Map<string, { services: Map<string, string>; version: string }>();
  const envFiles = new Map<string, string>();
  for (const host of live.tenants) {
    const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${host.slug}`], client)).split(/\s+/).filter(Boolean);
    const services = new Map<string, string>();
    let version = '';
    for (const id of ids) {
      const [service, health] = (
        await docker(['inspect', '--format', '{{index .Config.Labels "com.docker.compose.service"}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}', id], client)
      )
        .trim()
        .split(' ');
      services.set(service!, health!);
      if (service === 'api') version = (await docker(['exec', id, 'cat', '/VERSION'], client)).trim();
    }
    stacks.set(host.slug, { services, version });
    envFiles.set(host.slug, await readFile(join(host.installDir, '.env'), 'utf8'));
  }
  return { stacks, envFiles, hosts: live.tenants };
}

/** Processes whose command line names `dir` (dockerd, containerd, shims, the registry). */
async function processesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) found.push(`${pid} ${cmdline.replace(/\0/g, ' ').trim()}`);
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie waiting to be reaped has stopped all the same.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') !== true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'demo-'));
  result = await runDemo({
    mode: 'docker',
    repoRoot: REPO_ROOT,
    hostsDir: join(work, 'hosts'),
    runDir: join(work, 'run'),
    out: (s) => void (output += s),
    beforeCleanup: async (live) => {
      seen = await look(live);
    },
  });
}, 600_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('npm start (the demo) on a private Docker engine', () => {
  it('ends saying every tenant converged, with the status table', () => {
    expect(result.problems, output).toEqual([]);
    expect(result.ok).toBe(true);
    expect(output).toMatch(/5 converged, 0 pending, 0 failed, 1 paused, 0 never reported/);
    expect(output).not.toMatch(/DRY RUN/);
  });

  it('runs a healthy stack for every unpaused tenant, none for the paused one', () => {
    expect([...seen!.stacks.keys()].sort()).toEqual(['bnkops', 'linda', 'marcelle', 'pia', 'soroush']);
    for (const [slug, stack] of seen!.stacks) {
      expect(stack.services.size, slug).toBeGreaterThanOrEqual(5);
      // newt is the one service of the example compose without a healthcheck.
      for (const [service, health] of stack.services)
        expect(`${slug}/${service} ${health}`).toBe(`${slug}/${service} ${service === 'newt' ? 'running' : 'healthy'}`);
    }
    // soroush has monitoring off, bnkops and marcelle run the tunnel.
    expect(seen!.stacks.get('soroush')!.services.has('prometheus')).toBe(false);
    expect(seen!.stacks.get('bnkops')!.services.has('newt')).toBe(true);
  });

  it('moves the bumped tenant to the new version and leaves the others where they were', () => {
    const versions = Object.fromEntries([...seen!.stacks].map(([slug, s]) => [slug, s.version]));
    expect(versions).toEqual({ bnkops: 'v2.11.0', linda: 'v2.9.7', marcelle: 'v2.10.3', pia: 'v2.10.3', soroush: 'v2.10.3' });
    const bySlug = Object.fromEntries(result.tenants.map((t) => [t.slug, t]));
    expect(bySlug.bnkops).toMatchObject({ firstPass: 'applied', secondPass: 'applied', versionBefore: 'v2.10.3', versionAfter: 'v2.11.0' });
    for (const slug of ['linda', 'marcelle', 'pia', 'soroush']) {
      expect(bySlug[slug]).toMatchObject({ firstPass: 'applied', secondPass: 'noop' });
      expect(bySlug[slug]!.apiContainerAfter).toBe(bySlug[slug]!.apiContainerBefore);
    }
  });

  it("keeps every line of each host's own .env (adopted secrets, comments, its HTTP_PORT)", () => {
    for (const host of seen!.hosts) {
      const env = seen!.envFiles.get(host.slug)!;
      expect(env.startsWith(host.seededEnv), host.slug).toBe(true);
      expect(env).toMatch(new RegExp(`^IMAGE_TAG=${host.slug === 'bnkops' ? 'v2\\.11\\.0' : host.slug === 'linda' ? 'v2\\.9\\.7' : 'v2\\.10\\.3'}$`, 'm'));
    }
  });

  it('leaves no process, folder or mount behind', async () => {
    expect(result.startedPids.length).toBe(2);
    for (const pid of result.startedPids) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(await processesUnder(join(work, 'run'))).toEqual([]);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(work);
    for (const dir of ['hosts', 'run']) await expect(access(join(work, dir))).rejects.toThrow();
  });
});
