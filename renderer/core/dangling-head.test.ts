// The ref advertisement of a repository whose HEAD names no branch, as git http-backend
// sends it, made fetchable; every other advertisement passes unchanged.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startGitServer } from '../../test/support/git-server.js';
import { advertiseHeadAs } from './dangling-head.js';
import { fetchAllBranches, fetchBranch, hasObject } from './git.js';

const pkt = (payload: string) => `${(payload.length + 4).toString(16).padStart(4, '0')}${payload}`;
const OID = 'a'.repeat(40);

describe('advertiseHeadAs', () => {
  it('advertises HEAD as the fetched branch, as git would, only when the advertisement names no HEAD', () => {
    const B = 'b'.repeat(40);
    const dangling = Buffer.from(`${pkt('# service=git-upload-pack\n')}0000${pkt(`${OID} refs/heads/tenants/acme\0multi_ack ofs-delta\n`)}${pkt(`${B} refs/heads/tenants/bravo\n`)}0000`);
    expect(advertiseHeadAs(dangling, 'refs/heads/tenants/bravo').toString()).toBe(
      `${pkt('# service=git-upload-pack\n')}0000${pkt(`${B} HEAD\0multi_ack ofs-delta symref=HEAD:refs/heads/tenants/bravo\n`)}${pkt(`${OID} refs/heads/tenants/acme\n`)}${pkt(`${B} refs/heads/tenants/bravo\n`)}0000`,
    );
    // Without a branch (a fetch of every branch): the first one.
    expect(advertiseHeadAs(dangling).toString()).toContain(pkt(`${OID} HEAD\0multi_ack ofs-delta symref=HEAD:refs/heads/tenants/acme\n`));
    const withHead = Buffer.from(`${pkt('# service=git-upload-pack\n')}0000${pkt(`${OID} HEAD\0multi_ack symref=HEAD:refs/heads/main\n`)}${pkt(`${OID} refs/heads/main\n`)}0000`);
    expect(advertiseHeadAs(withHead, 'refs/heads/tenants/acme')).toEqual(withHead);
    const notPktLines = Buffer.from('<html>not git</html>');
    expect(advertiseHeadAs(notPktLines, 'refs/heads/x')).toEqual(notPktLines);
  });

  it('lets the agent, status and promote fetch from a repository holding only tenant branches', async () => {
    const git = await startGitServer();
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-dangling-head-'));
    try {
      const bare = await git.createBareRepo('fleet.git');
      const env = { ...process.env, GIT_AUTHOR_NAME: 'x', GIT_AUTHOR_EMAIL: 'x@localhost', GIT_COMMITTER_NAME: 'x', GIT_COMMITTER_EMAIL: 'x@localhost' };
      const tree = execFileSync('git', ['--git-dir', bare, 'mktree'], { input: '', env }).toString().trim();
      const commit = execFileSync('git', ['--git-dir', bare, 'commit-tree', tree, '-m', 'tenant'], { env }).toString().trim();
      execFileSync('git', ['--git-dir', bare, 'update-ref', 'refs/heads/tenants/acme', commit]);
      // HEAD still names refs/heads/main, which does not exist.
      expect(() => execFileSync('git', ['--git-dir', bare, 'rev-parse', '--verify', '-q', 'HEAD'], { stdio: 'pipe' })).toThrow();
      expect(await fetchBranch(join(dir, 'repo.git'), git.url('fleet.git'), 'tenants/acme')).toBe(commit);
      // flotilla status and promote fetch every branch at once.
      await fetchAllBranches(join(dir, 'all.git'), git.url('fleet.git'));
      expect(await hasObject(join(dir, 'all.git'), commit)).toBe(true);
    } finally {
      await git.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
