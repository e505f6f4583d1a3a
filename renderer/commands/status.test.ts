// `flotilla status` against the loopback git server (tenant branches, real ls-refs
// and fetch) and the OpenAPI-checked GitHub and Gitea stand-ins (commit statuses): a
// rollout with a success, a failure, a paused tenant and one never published.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORGE_KINDS, startForgeStandIn, type ForgeStandIn } from '../../test/support/forge-standin.js';
import { startGitServer, type GitServer } from '../../test/support/git-server.js';
import { TenantsFailedError } from '../core/errors.js';
import { serializeManifest } from '../core/manifest.js';
import type { CliIo } from '../cli.js';
import { registerStatus } from './status.js';

const run = promisify(execFile);
const TOKEN = 'ghs_status_test_token_0123456789abcdef';

const FLEET: Record<string, string> = {
  'fleet/fleet.yaml':
    'defaults:\n  imageTag: v2.10.3\n  registry: 127.0.0.1:5000/flotilla\n  images: {api: api}\n  domainSuffix: example.net\n',
  'fleet/tenants/bnkops.yaml': 'mode: managed\n',
  'fleet/tenants/marcelle.yaml': 'mode: managed\n',
  'fleet/tenants/pia.yaml': 'mode: adopted\npaused: true\n',
  'fleet/tenants/trbh.yaml': 'mode: managed\n',
};

describe.each(FORGE_KINDS)('flotilla status (%s stand-in)', (kind) => {
  let server: GitServer;
  let standIn: ForgeStandIn;
  let work: string;
  let url: string;
  const heads: Record<string, string> = {};
  const SOURCE = 'c'.repeat(40);

  async function git(cwd: string, ...args: string[]): Promise<string> {
    const { stdout } = await run('git', ['-c', 'user.name=Flotilla', '-c', 'user.email=f@example.com', ...args], {
      cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    });
    return stdout.trim();
  }

  async function write(dir: string, files: Record<string, string>) {
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
  }

  beforeAll(async () => {
    server = await startGitServer({ token: TOKEN });
    await server.createBareRepo('fleet.git');
    url = server.url('fleet.git');
    work = await mkdtemp(join(tmpdir(), 'flotilla-status-'));
    await git(work, 'init', '-q', '-b', 'main');
    await write(work, FLEET);
    await git(work, 'add', '-A');
    await git(work, 'commit', '-q', '-m', 'fleet');
    await git(work, 'remote', 'add', 'origin', url);
    const auth = `http.extraHeader=Authorization: Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`;
    // Published tenant branches: an orphan commit each, with the manifest and the source trailer.
    for (const [slug, tag] of [['bnkops', 'v2.10.3'], ['marcelle', 'v2.10.3'], ['pia', 'v2.10.2']] as const) {
      const tree = await mkdtemp(join(tmpdir(), 'flotilla-status-tree-'));
      await git(tree, 'init', '-q', '-b', `tenants/${slug}`);
      await write(tree, {
        'docker-compose.yml': 'services: {}\n',
        '.flotilla/manifest.json': serializeManifest({
          schemaVersion: 1,
          tenant: slug,
          mode: 'managed',
          imageTag: tag,
          source: { repo: url, commit: SOURCE },
          files: [],
          envPatch: {},
          requiredVariables: [],
          secrets: [],
        }),
      });
      await git(tree, 'add', '-A');
      await git(tree, 'commit', '-q', '-m', `Render tenant ${slug}\n\nFlotilla-Source: ${SOURCE}`);
      heads[slug] = await git(tree, 'rev-parse', 'HEAD');
      await git(tree, '-c', auth, 'push', '-q', url, `tenants/${slug}`);
      await rm(tree, { recursive: true, force: true });
    }
    standIn = await startForgeStandIn(kind, { token: TOKEN, repos: ['acme/fleet'] });
    const post = (sha: string, state: string, slug: string, description: string) =>
      fetch(`${standIn.url}/repos/acme/fleet/statuses/${sha}`, {
        method: 'POST',
        headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ state, context: `flotilla/${slug}`, description }),
      });
    await post(heads.bnkops!, 'pending', 'bnkops', 'applying');
    await post(heads.bnkops!, 'success', 'bnkops', 'v2.10.3 running, 1/1 services healthy');
    // A hand edit on bnkops's host: shown, but bnkops stays converged and the exit code counts only marcelle.
    await post(heads.bnkops!, 'failure', 'bnkops/drift', '1 local change: nginx/conf.d/api.conf (modified)');
    await post(heads.marcelle!, 'pending', 'marcelle', 'applying');
    await post(heads.marcelle!, 'failure', 'marcelle', 'compose up: api unhealthy after 60s; rolled back');
    await post(heads.pia!, 'success', 'pia', 'v2.10.2 running');
  });
  afterAll(async () => {
    expect(standIn.violations()).toEqual([]);
    await standIn.close();
    await server.stop();
    await rm(work, { recursive: true, force: true });
  });

  function cli(extraEnv: Record<string, string> = {}) {
    const out: string[] = [];
    const io: CliIo & { isTTY: boolean } = {
      stdout: (s) => out.push(s),
      stderr: (s) => out.push(s),
      cwd: work,
      env: { GITHUB_TOKEN: TOKEN, GITHUB_API_URL: standIn.url, GITHUB_REPOSITORY: 'acme/fleet', ...extraEnv },
      isTTY: true,
    };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerStatus(program, io);
    return { run: (args: string[]) => program.parseAsync(args, { from: 'user' }), out };
  }

  it('shows a rollout with a success, a failure and a paused tenant, and exits non-zero for the failure', async () => {
    const { run, out } = cli();
    const err = await run(['status']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TenantsFailedError);
    expect((err as Error).message).toBe('1 tenant failed: marcelle');
    const text = out.join('');
    const line = (slug: string) => text.split('\n').find((l) => l.startsWith(`${slug} `)) ?? '';
    expect(line('bnkops')).toMatch(new RegExp(`^bnkops\\s+v2\\.10\\.3\\s+v2\\.10\\.3\\s+${heads.bnkops!.slice(0, 7)}\\s+ccccccc\\s+converged\\s+local changes\\s+\\d+s\\s+v2\\.10\\.3 running, 1/1 services healthy$`));
    expect(text).toContain('local changes on bnkops: 1 local change: nginx/conf.d/api.conf (modified)\n');
    expect(line('marcelle')).toMatch(/\sfailed\s+-\s+\d+s\s+compose up: api unhealthy after 60s; rolled back$/);
    expect(line('pia')).toMatch(/\sv2\.10\.2\s.*\spaused \(success\)\s/);
    expect(line('trbh')).toMatch(/^trbh\s+v2\.10\.3\s+-\s+-\s+-\s+never reported/);
    expect(text).toContain('\n1 converged, 0 pending, 1 failed, 1 paused, 1 never reported\n');
    expect(text).not.toContain(TOKEN);
  });

  it('prints JSON for scripts', async () => {
    const { run, out } = cli();
    await run(['status', '--json']).catch(() => undefined);
    const json = JSON.parse(out.join(''));
    expect(json.summary).toEqual({ converged: 1, pending: 0, failed: 1, paused: 1, 'never reported': 1, unknown: 0 });
    expect(json.tenants.find((t: { slug: string }) => t.slug === 'marcelle')).toMatchObject({
      head: heads.marcelle,
      source: SOURCE,
      state: 'failure',
      verdict: 'failed',
    });
  });

  // No forge is asked: the same whichever stand-in runs.
  it('works without a forge token: branches and published commits from git, statuses shown as unavailable', async () => {
    const out: string[] = [];
    const io: CliIo & { isTTY: boolean } = {
      stdout: (s) => out.push(s),
      stderr: (s) => out.push(s),
      cwd: work,
      // Only the fleet repository's token: no GITHUB_TOKEN, no API URL, no repository name.
      env: { FLOTILLA_GIT_TOKEN: TOKEN },
      isTTY: true,
    };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerStatus(program, io);
    await program.parseAsync(['status'], { from: 'user' });
    const text = out.join('');
    const line = (slug: string) => text.split('\n').find((l) => l.startsWith(`${slug} `)) ?? '';
    expect(line('bnkops')).toMatch(new RegExp(`^bnkops\\s+v2\\.10\\.3\\s+v2\\.10\\.3\\s+${heads.bnkops!.slice(0, 7)}\\s+ccccccc\\s+unknown\\s+-\\s+-\\s+-$`));
    expect(line('marcelle')).toMatch(/\sunknown\s/);
    expect(line('pia')).toMatch(/\sv2\.10\.2\s.*\spaused\s/);
    expect(line('trbh')).toMatch(/^trbh\s+v2\.10\.3\s+-\s+-\s+-\s+never reported/);
    expect(text).toContain(
      '\n0 converged, 0 pending, 0 failed, 1 paused, 1 never reported, 2 unknown (statuses unavailable: no FLOTILLA_GITHUB_TOKEN or GITHUB_TOKEN set)\n',
    );
  });
});
