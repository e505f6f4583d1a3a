// A fleet repo for rollout tests: the example fleet in a git checkout whose origin is
// a bare repo on the loopback git server (main, tenant branches and rollback branches
// all live there), and a forge stand-in (GitHub or Gitea) resolving refs from that bare repo.
// The server runs in the test process, so everything that talks to it is async.
import { execFile, execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createForge, type Forge } from '../../renderer/core/forge.js';
import type { CommitState } from '../../renderer/core/github.js';
import { startForgeStandIn, type ForgeStandIn, type ForgeStandInKind } from '../support/forge-standin.js';
import { startGitServer, type GitServer } from '../support/git-server.js';

const execFileAsync = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
export const TOKEN = 'ghs_rollout_test_token_0000000000000000';
export const REPO = { owner: 'acme', repo: 'fleet' };

export interface RolloutFixture {
  server: GitServer;
  standIn: ForgeStandIn;
  /** The forge client for the stand-in (detected from its URL, as the commands do). */
  forge: Forge;
  /** Checkout of the fleet source; origin is `remote`. */
  root: string;
  remote: string;
  bare: string;
  cacheDir: string;
  git(...args: string[]): string;
  /** Commits every change in the checkout and pushes main; returns the commit. */
  commit(message: string): Promise<string>;
  editTenant(slug: string, edit: (text: string) => string): Promise<void>;
  editFleet(edit: (text: string) => string): Promise<void>;
  /** `Flotilla-Source` of each tenant branch head (undefined: no branch). */
  branchSources(): Promise<Map<string, string | undefined>>;
  /** What an agent posts: `flotilla/<slug>` on the source commit. */
  report(slug: string, sha: string, state: CommitState, description?: string): Promise<void>;
  close(): Promise<void>;
}

export async function startRolloutFixture(kind: ForgeStandInKind = 'github'): Promise<RolloutFixture> {
  const server = await startGitServer();
  const bare = await server.createBareRepo('fleet.git');
  const remote = server.url('fleet.git');
  const work = await mkdtemp(join(tmpdir(), 'flotilla-rollout-'));
  const root = join(work, 'source');
  await cp(join(repoRoot, 'fleet'), join(root, 'fleet'), { recursive: true });
  await cp(join(repoRoot, 'templates'), join(root, 'templates'), { recursive: true });
  const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Ada');
  git('config', 'user.email', 'ada@example.com');
  git('remote', 'add', 'origin', remote);
  const standIn = await startForgeStandIn(kind, {
    token: TOKEN,
    repos: ['acme/fleet'],
    resolveBranch: (branch) => {
      try {
        // A local read of the bare repo; it does not go through the server.
        return execFileSync('git', ['--git-dir', bare, 'rev-parse', '--verify', '-q', `refs/heads/${branch}^{commit}`], { encoding: 'utf8' }).trim();
      } catch {
        return undefined;
      }
    },
  });
  const forge = createForge({ token: TOKEN, baseUrl: standIn.url, retry: false, throttle: false });

  const fixture: RolloutFixture = {
    server,
    standIn,
    forge,
    root,
    remote,
    bare,
    cacheDir: join(work, 'cache'),
    git,
    async commit(message) {
      git('add', '-A');
      git('commit', '-q', '-m', message);
      await execFileAsync('git', ['push', '-q', 'origin', 'main'], { cwd: root });
      return git('rev-parse', 'HEAD');
    },
    async editTenant(slug, edit) {
      const file = join(root, 'fleet/tenants', `${slug}.yaml`);
      await writeFile(file, edit(await readFile(file, 'utf8').catch(() => '')));
    },
    async editFleet(edit) {
      const file = join(root, 'fleet/fleet.yaml');
      await writeFile(file, edit(await readFile(file, 'utf8')));
    },
    async branchSources() {
      const out = new Map<string, string | undefined>();
      for (const slug of ['bnkops', 'linda', 'marcelle', 'pia', 'soroush', 'trbh']) {
        try {
          const { stdout } = await execFileAsync('git', ['--git-dir', bare, 'log', '-1', '--format=%(trailers:key=Flotilla-Source,valueonly)', `tenants/${slug}`]);
          out.set(slug, stdout.trim());
        } catch {
          out.set(slug, undefined);
        }
      }
      return out;
    },
    async report(slug, sha, state, description = state === 'success' ? 'v2 up, 1/1 healthy' : 'health failed: api unhealthy') {
      await forge.createCommitStatus({ ...REPO, sha, context: `flotilla/${slug}`, state, description });
    },
    async close() {
      await standIn.close();
      await server.stop();
      await rm(work, { recursive: true, force: true });
    },
  };
  return fixture;
}
