// Integration: publishes to the real `git http-backend` on 127.0.0.1 and reads the
// branches back with the real git CLI.
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { raceBeforeNextPush, startGitServer, type GitRequestInfo, type GitServer } from '../../test/support/git-server.js';
import { GitError } from '../core/errors.js';
import { MANIFEST_PATH, sha256, type RenderedFile } from '../core/manifest.js';
import isogit from 'isomorphic-git';
import { signCommitPayload } from '../core/signing.js';
import { storePack } from '../core/receive-pack.js';
import { buildCommit, buildTree } from './git-objects.js';
import { publishTenants, type PublishTenant } from './publish.js';
import { MAX_CACHE_PACKS } from './tree-cache.js';

const execFileAsync = promisify(execFile);
const gitEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir() };
const git = async (args: string[], cwd?: string): Promise<string> =>
  (await execFileAsync('git', args, { cwd, env: gitEnv })).stdout;

const SOURCE_1 = { repo: 'acme/fleet', commit: '1'.repeat(40) };
const SOURCE_2 = { repo: 'acme/fleet', commit: '2'.repeat(40) };

function render(slug: string, tag: string, opts: { withServicesConf?: boolean } = {}): PublishTenant {
  const files: RenderedFile[] = [
    {
      path: 'docker-compose.yml',
      content: `# tenant ${slug}\nservices:\n  api:\n    image: registry.example/api:\${IMAGE_TAG:-${tag}}\n`,
      mode: 0o644,
    },
    { path: 'nginx/conf.d/default.conf', content: `server { server_name ${slug}.example.com; }\n`, mode: 0o644 },
    { path: 'nginx/conf.d/api.conf', content: 'location /api { proxy_pass http://api:8080; }\n', mode: 0o644 },
    { path: 'scripts/healthcheck.sh', content: '#!/bin/sh\nwget -q -O- http://127.0.0.1/health\n', mode: 0o755 },
  ];
  if (opts.withServicesConf !== false) {
    files.push({ path: 'nginx/conf.d/services.conf', content: '# services\n', mode: 0o644 });
  }
  const manifest = {
    tenant: slug,
    imageTag: tag,
    files: files.map((f) => ({ path: f.path, sha256: sha256(f.content), mode: f.mode })),
  };
  return { slug, files: [...files, { path: MANIFEST_PATH, content: `${JSON.stringify(manifest, null, 2)}\n`, mode: 0o644 }] };
}

describe('publishTenants against the loopback git server', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const tempDir = async (name: string) => {
    const dir = await mkdtemp(join(tmpdir(), `flotilla-publish-${name}-`));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const setup = async (
    options: { token?: string; beforeRequest?: (r: GitRequestInfo) => Promise<void> } = {},
  ): Promise<{ server: GitServer; url: string; bare: string; workDir: string }> => {
    const server = await startGitServer(options);
    cleanup.push(() => server.stop());
    const bare = await server.createBareRepo('fleet.git');
    return { server, url: server.url('fleet.git'), bare, workDir: join(await tempDir('work'), 'cache.git') };
  };
  const tenantBranches = async (url: string) =>
    (await git(['ls-remote', url, 'refs/heads/tenants/*']))
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split('\t')[1]);
  const receivePacks = (server: GitServer) =>
    server.stats().byPath['POST /fleet.git/git-receive-pack']?.requests ?? 0;
  /**
   * setup() whose `handEditDuringNextPush(branch)` commits a hand edit on `branch` in
   * another clone and pushes it during our next receive-pack POST: after publish read the
   * refs, before its own push lands. It returns that commit; `raced()` says the push happened.
   */
  const setupWithRacingHandEdit = async () => {
    const { beforeRequest, arm, raced } = raceBeforeNextPush();
    const env = await setup({ beforeRequest });
    const handEditDuringNextPush = async (branch: string): Promise<string> => {
      const other = await tempDir('other');
      await git(['clone', '--quiet', '--branch', branch, env.url, other]);
      await writeFile(join(other, 'hand-edit.txt'), 'made by hand\n');
      await git(['add', 'hand-edit.txt'], other);
      await git(['-c', 'user.name=o', '-c', 'user.email=o@example.invalid', 'commit', '--quiet', '-m', 'hand edit'], other);
      arm(async () => {
        await git(['push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`], other);
      });
      return (await git(['rev-parse', 'HEAD'], other)).trim();
    };
    return { ...env, handEditDuringNextPush, raced };
  };

  it('makes one branch per tenant whose tree is exactly the render, with the source trailer, in one push', async () => {
    const { server, url, bare, workDir } = await setup();
    const tenants = [render('linda', 'v2.10.2'), render('omar', 'v2.10.2'), render('pia', 'v2.9.0')];
    const result = await publishTenants({ repoUrl: url, workDir, tenants, source: SOURCE_1 });
    expect(result).toEqual({ committed: ['linda', 'omar', 'pia'], unchanged: [], pushed: true });
    expect(await tenantBranches(url)).toEqual(['refs/heads/tenants/linda', 'refs/heads/tenants/omar', 'refs/heads/tenants/pia']);

    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    expect((await git(['ls-tree', '-r', '--format=%(objectmode) %(path)', 'HEAD'], clone)).trim().split('\n')).toEqual([
      '100644 .flotilla/manifest.json',
      '100644 docker-compose.yml',
      '100644 nginx/conf.d/api.conf',
      '100644 nginx/conf.d/default.conf',
      '100644 nginx/conf.d/services.conf',
      '100755 scripts/healthcheck.sh',
    ]);
    expect(await git(['show', 'HEAD:docker-compose.yml'], clone)).toContain('${IMAGE_TAG:-v2.10.2}');
    expect(await git(['show', `HEAD:${MANIFEST_PATH}`], clone)).toContain('"tenant": "linda"');
    const message = await git(['log', '-1', '--format=%B'], clone);
    expect(message).toMatch(/linda/);
    expect(message).toContain(SOURCE_1.commit.slice(0, 12));
    expect(await git(['log', '-1', '--format=%(trailers:key=Flotilla-Source,valueonly)'], clone)).toBe(
      `${SOURCE_1.commit}\n\n`,
    );
    // The trees hashed in memory are well-formed git objects.
    await git(['--git-dir', bare, 'fsck', '--strict']);
    // Every branch went up in one receive-pack request.
    expect(receivePacks(server)).toBe(1);
  });

  it('starts its work dir afresh once it holds more than MAX_CACHE_PACKS packs, and still publishes right', async () => {
    const { url, workDir } = await setup();
    await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v1'), render('omar', 'v1')], source: SOURCE_1 });
    // As after many publishes: one small pack each.
    for (let i = 0; i <= MAX_CACHE_PACKS; i++) {
      const content = Buffer.from(`filler ${i}\n`);
      const oid = createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
      await storePack(workDir, [{ oid, type: 'blob', content }]);
    }
    const packs = async () => (await readdir(join(workDir, 'objects', 'pack'))).filter((n) => n.endsWith('.pack')).length;
    expect(await packs()).toBeGreaterThan(MAX_CACHE_PACKS);

    const result = await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v2'), render('omar', 'v1')], source: SOURCE_1 });
    expect(result).toEqual({ committed: ['linda'], unchanged: ['omar'], pushed: true });
    // Started afresh: one pack fetched per branch tip, one stored for the new commit.
    expect(await packs()).toBeLessThanOrEqual(3);
    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    expect(await git(['show', 'HEAD:docker-compose.yml'], clone)).toContain('${IMAGE_TAG:-v2}');
    expect(await git(['rev-list', '--count', 'HEAD'], clone)).toBe('2\n');
  });

  it('new and updated branches go up together in one push, and the server holds every object they need', async () => {
    const { server, url, bare, workDir } = await setup();
    await publishTenants({
      repoUrl: url,
      workDir,
      tenants: [render('linda', 'v1'), render('omar', 'v1'), render('pia', 'v1')],
      source: SOURCE_1,
    });
    const omarBefore = await git(['ls-remote', url, 'refs/heads/tenants/omar']);
    server.resetStats();

    const tenants = [render('linda', 'v2'), render('omar', 'v1'), render('pia', 'v2', { withServicesConf: false }), render('quinn', 'v2'), render('rosa', 'v1')];
    const result = await publishTenants({ repoUrl: url, workDir, tenants, source: SOURCE_2 });
    expect(result).toEqual({ committed: ['linda', 'pia', 'quinn', 'rosa'], unchanged: ['omar'], pushed: true });
    expect(receivePacks(server)).toBe(1);
    expect(await git(['ls-remote', url, 'refs/heads/tenants/omar'])).toBe(omarBefore);
    await git(['--git-dir', bare, 'fsck', '--strict']);

    const clone = await tempDir('clone');
    await git(['clone', '--quiet', url, clone]);
    for (const tenant of tenants) {
      const ref = `origin/tenants/${tenant.slug}`;
      const paths = (await git(['ls-tree', '-r', '--name-only', ref], clone)).trim().split('\n');
      expect(paths).toEqual(tenant.files.map((f) => f.path).sort());
      for (const file of tenant.files) expect(await git(['show', `${ref}:${file.path}`], clone)).toBe(file.content);
    }
    expect((await git(['rev-list', '--count', 'origin/tenants/linda'], clone)).trim()).toBe('2');
    expect((await git(['rev-list', '--count', 'origin/tenants/quinn'], clone)).trim()).toBe('1');
  });

  it('a large change goes up in batches of pushBatchSize branches', async () => {
    const { server, url, bare, workDir } = await setup();
    const slugs = ['a', 'b', 'c', 'd', 'e'];
    const result = await publishTenants({
      repoUrl: url,
      workDir,
      tenants: slugs.map((slug) => render(slug, 'v1')),
      source: SOURCE_1,
      pushBatchSize: 2,
    });
    expect(result.committed).toEqual(slugs);
    expect(receivePacks(server)).toBe(3);
    expect(await tenantBranches(url)).toEqual(slugs.map((slug) => `refs/heads/tenants/${slug}`));
    await git(['--git-dir', bare, 'fsck', '--strict']);
  });

  it('a second run makes no commit and no push, from the cache or from a fresh work dir', async () => {
    const { server, url, workDir } = await setup();
    // Enough tenants that a fresh work dir fetches them all in one go.
    const slugs = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const tenants = slugs.map((slug) => render(slug, 'v2.10.2'));
    await publishTenants({ repoUrl: url, workDir, tenants, source: SOURCE_1 });
    const before = await git(['ls-remote', url]);
    server.resetStats();

    const again = await publishTenants({ repoUrl: url, workDir, tenants, source: SOURCE_2 });
    expect(again).toEqual({ committed: [], unchanged: slugs, pushed: false });
    const fresh = await publishTenants({
      repoUrl: url,
      workDir: join(await tempDir('fresh'), 'cache.git'),
      tenants,
      source: SOURCE_2,
    });
    expect(fresh).toEqual({ committed: [], unchanged: slugs, pushed: false });
    expect(await git(['ls-remote', url])).toBe(before);
    expect(receivePacks(server)).toBe(0);
  });

  it('changing one tenant adds exactly one commit on one branch, whose diff shows the new tag', async () => {
    const { url, workDir } = await setup();
    await publishTenants({
      repoUrl: url,
      workDir,
      tenants: [render('linda', 'v2.10.2'), render('omar', 'v2.10.2')],
      source: SOURCE_1,
    });
    const omarBefore = await git(['ls-remote', url, 'refs/heads/tenants/omar']);

    const result = await publishTenants({
      repoUrl: url,
      workDir,
      tenants: [render('linda', 'v2.10.3'), render('omar', 'v2.10.2')],
      source: SOURCE_2,
    });
    expect(result).toEqual({ committed: ['linda'], unchanged: ['omar'], pushed: true });
    expect(await git(['ls-remote', url, 'refs/heads/tenants/omar'])).toBe(omarBefore);

    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    expect((await git(['rev-list', '--count', 'HEAD'], clone)).trim()).toBe('2');
    const diff = await git(['diff', 'HEAD~1', 'HEAD', '--', 'docker-compose.yml'], clone);
    expect(diff).toContain('-    image: registry.example/api:${IMAGE_TAG:-v2.10.2}');
    expect(diff).toContain('+    image: registry.example/api:${IMAGE_TAG:-v2.10.3}');
    expect(await git(['log', '-1', '--format=%(trailers:key=Flotilla-Source,valueonly)'], clone)).toBe(
      `${SOURCE_2.commit}\n\n`,
    );
  });

  it('a file that left the render disappears from the branch', async () => {
    const { url, workDir } = await setup();
    await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v1')], source: SOURCE_1 });
    const result = await publishTenants({
      repoUrl: url,
      workDir,
      tenants: [render('linda', 'v1', { withServicesConf: false })],
      source: SOURCE_2,
    });
    expect(result.committed).toEqual(['linda']);
    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    const paths = (await git(['ls-tree', '-r', '--name-only', 'HEAD'], clone)).trim().split('\n');
    expect(paths).not.toContain('nginx/conf.d/services.conf');
    expect(paths).toContain('nginx/conf.d/api.conf');
  });

  it('a hand-made commit on a tenant branch is built upon and its stray file removed', async () => {
    const { url, workDir } = await setup();
    await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v1')], source: SOURCE_1 });
    const other = await tempDir('other');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, other]);
    await writeFile(join(other, 'stray.txt'), 'not rendered\n');
    await git(['add', 'stray.txt'], other);
    await git(['-c', 'user.name=o', '-c', 'user.email=o@example.invalid', 'commit', '--quiet', '-m', 'stray'], other);
    await git(['push', '--quiet', 'origin', 'HEAD:refs/heads/tenants/linda'], other);
    const theirs = (await git(['rev-parse', 'HEAD'], other)).trim();

    const result = await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v1')], source: SOURCE_1 });
    expect(result.committed).toEqual(['linda']);
    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    expect((await git(['rev-parse', 'HEAD~1'], clone)).trim()).toBe(theirs);
    expect(await git(['ls-tree', '-r', '--name-only', 'HEAD'], clone)).not.toContain('stray.txt');
  });

  it('a push rejected because the branch moved is retried on top of the new commit, never forced', async () => {
    const { url, workDir, handEditDuringNextPush, raced } = await setupWithRacingHandEdit();
    await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v1')], source: SOURCE_1 });

    // Someone else's commit on the branch, pushed after publish discovered the ref and before its push lands.
    const theirs = await handEditDuringNextPush('tenants/linda');

    const result = await publishTenants({ repoUrl: url, workDir, tenants: [render('linda', 'v2')], source: SOURCE_2 });
    expect(raced()).toBe(true); // the race really happened
    expect(result).toEqual({ committed: ['linda'], unchanged: [], pushed: true });

    const clone = await tempDir('clone');
    await git(['clone', '--quiet', '--branch', 'tenants/linda', url, clone]);
    // Their commit is kept in history (not forced away), ours sits on top of it.
    expect((await git(['rev-parse', 'HEAD~1'], clone)).trim()).toBe(theirs);
    expect((await git(['rev-list', '--count', 'HEAD'], clone)).trim()).toBe('3');
    // And the branch tree is still exactly the render.
    const paths = (await git(['ls-tree', '-r', '--name-only', 'HEAD'], clone)).trim().split('\n');
    expect(paths).not.toContain('hand-edit.txt');
    expect(await git(['show', 'HEAD:docker-compose.yml'], clone)).toContain('${IMAGE_TAG:-v2}');
    expect(await git(['log', '-1', '--format=%(trailers:key=Flotilla-Source,valueonly)'], clone)).toBe(
      `${SOURCE_2.commit}\n\n`,
    );
  });

  it('in one push, only the branch that moved is rebuilt on top and pushed again; the others land at once', async () => {
    const { server, url, workDir, handEditDuringNextPush, raced } = await setupWithRacingHandEdit();
    const slugs = ['linda', 'omar', 'pia'];
    await publishTenants({ repoUrl: url, workDir, tenants: slugs.map((s) => render(s, 'v1')), source: SOURCE_1 });

    const theirs = await handEditDuringNextPush('tenants/omar');
    server.resetStats();
    const pushedInOrder: string[] = [];
    const result = await publishTenants({
      repoUrl: url,
      workDir,
      tenants: slugs.map((s) => render(s, 'v2')),
      source: SOURCE_2,
      onProgress: (event) => {
        if (event.phase === 'push') pushedInOrder.push(event.slug);
      },
    });
    expect(raced()).toBe(true);
    expect(result).toEqual({ committed: slugs, unchanged: [], pushed: true });
    // linda and pia landed with the first request; omar alone went again after its rebuild.
    expect(pushedInOrder).toEqual(['linda', 'pia', 'omar']);
    expect(receivePacks(server)).toBe(3); // ours, the racing push, our retry of omar

    const clone = await tempDir('clone');
    await git(['clone', '--quiet', url, clone]);
    expect((await git(['rev-parse', 'origin/tenants/omar~1'], clone)).trim()).toBe(theirs);
    expect(await git(['ls-tree', '-r', '--name-only', 'origin/tenants/omar'], clone)).not.toContain('hand-edit.txt');
    for (const slug of slugs) {
      expect(await git(['show', `origin/tenants/${slug}:docker-compose.yml`], clone)).toContain('${IMAGE_TAG:-v2}');
      expect((await git(['rev-list', '--count', `origin/tenants/${slug}`], clone)).trim()).toBe(slug === 'omar' ? '3' : '2');
    }
  });

  it('publishes to a token-protected server with the token, and fails without it without showing it', async () => {
    const token = 'ghp_PublishToken789';
    const { url, workDir } = await setup({ token });
    const tenants = [render('linda', 'v1')];
    const result = await publishTenants({ repoUrl: url, auth: { token }, workDir, tenants, source: SOURCE_1 });
    expect(result.committed).toEqual(['linda']);
    const withToken = url.replace('http://', `http://x-access-token:${token}@`);
    expect(await git(['ls-remote', withToken, 'refs/heads/tenants/linda'])).toMatch(/tenants\/linda/);

    const wrong = 'ghp_NotTheToken000';
    for (const auth of [undefined, { token: wrong }]) {
      const err = await publishTenants({
        repoUrl: url,
        ...(auth ? { auth } : {}),
        workDir,
        tenants: [render('linda', 'v2')],
        source: SOURCE_2,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GitError);
      expect((err as GitError).message).toMatch(/401/);
      expect((err as GitError).message).not.toContain(wrong);
      expect((err as GitError).message).not.toContain(token);
    }
  });
});

describe('buildTree', () => {
  it('refuses paths that would not stay inside the tenant tree', () => {
    for (const path of ['../etc/passwd', '/abs', 'a//b', 'a/./b', '.git/config']) {
      expect(() => buildTree('linda', [{ path, content: 'x', mode: 0o644 }])).toThrow(/linda/);
    }
  });
  it('refuses duplicate paths, a file that is also a folder, and odd modes', () => {
    const file = (path: string, mode = 0o644) => ({ path, content: 'x', mode });
    expect(() => buildTree('linda', [file('a'), file('a')])).toThrow(/duplicate/);
    expect(() => buildTree('linda', [file('a'), file('a/b')])).toThrow(/both a file and a folder/);
    expect(() => buildTree('linda', [file('a', 0o600)])).toThrow(/mode 600/);
  });
  it('gives the same tree id for the same files in any order', () => {
    const files = render('linda', 'v1').files;
    expect(buildTree('linda', [...files].reverse()).oid).toBe(buildTree('linda', files).oid);
  });
});

describe('buildCommit', () => {
  const tree = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
  const parent = 'a'.repeat(40);
  const author = { name: 'Flotilla', email: 'flotilla@localhost', timestamp: 1_790_000_000 };
  const messages = ['Render tenant linda\n\nFlotilla-Source: abc\n', 'no final newline', '\n\nleading newlines\r\nand CRLF\n\n\n'];
  const { privateKey } = generateKeyPairSync('ed25519');

  it.each(messages.flatMap((message) => [[message, false] as const, [message, true] as const]))(
    'writes the commit isomorphic-git writes (message %j, signed: %s)',
    async (message, signed) => {
      const gitdir = await mkdtemp(join(tmpdir(), 'flotilla-commit-'));
      try {
        await isogit.init({ fs, gitdir, bare: true });
        const sign = (payload: string) => signCommitPayload(payload, privateKey);
        const theirs = await isogit.commit({
          fs,
          gitdir,
          ref: 'refs/heads/x',
          tree,
          parent: [parent],
          message,
          author: { ...author, timezoneOffset: 0 },
          committer: { ...author, timezoneOffset: 0 },
          ...(signed ? { signingKey: 'ssh', onSign: ({ payload }: { payload: string }) => ({ signature: sign(payload) }) } : {}),
        });
        const ours = buildCommit({ tree, parents: [parent], author, message, ...(signed ? { sign } : {}) });
        expect(ours.oid).toBe(theirs);
        const stored = await isogit.readObject({ fs, gitdir, oid: theirs, format: 'content' });
        expect(Buffer.from(stored.object as Uint8Array).equals(ours.content)).toBe(true);
      } finally {
        await rm(gitdir, { recursive: true, force: true });
      }
    },
  );
});
