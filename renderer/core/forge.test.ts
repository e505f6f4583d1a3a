// One contract, two forges: the GitHub forge against the GitHub stand-in (validated by
// @octokit/openapi) and the Gitea forge against the Gitea stand-in (validated by Gitea's
// own OpenAPI description), so both speak each API as its description says.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGitHubStandIn } from '../../test/support/github-standin.js';
import { startGiteaStandIn } from '../../test/support/gitea-standin.js';
import { GitHubError } from './errors.js';
import { createForge, detectForgeKind, forgeOptionsFromEnv, type Forge } from './forge.js';

const SHA = 'a1'.repeat(20);
const HEAD_SHA = 'b2'.repeat(20);
const repo = { owner: 'acme', repo: 'fleet' };

interface StandIn {
  url: string;
  token: string;
  setRef(fullName: string, ref: string, sha: string): void;
  failNext(count: number, fault: { status: number; match?: { method?: string; path?: RegExp } }): void;
  violations(): unknown[];
  comments(fullName: string, issueNumber?: number): Array<{ body: string }>;
  close(): Promise<void>;
}

const forges = [
  { name: 'GitHub', kind: 'github', start: () => startGitHubStandIn({ repos: ['acme/fleet'] }) as Promise<StandIn> },
  { name: 'Gitea', kind: 'gitea', start: () => startGiteaStandIn({ repos: ['acme/fleet'] }) as Promise<StandIn> },
] as const;

describe.each(forges)('the $name forge', ({ kind, start }) => {
  let standIn: StandIn;
  let forge: Forge;

  beforeEach(async () => {
    standIn = await start();
    standIn.setRef('acme/fleet', 'heads/main', SHA);
    standIn.setRef('acme/fleet', 'heads/bump/linda-v2', HEAD_SHA);
    // Detected from the URL: the Gitea stand-in's ends in /api/v1.
    forge = createForge({ token: standIn.token, baseUrl: standIn.url, retry: { retries: 1, baseDelayMs: 1 }, throttle: false, timeoutMs: 5_000 });
  });
  afterEach(async () => {
    await standIn.close();
  });

  it('is chosen from the API URL', () => {
    expect(forge.kind).toBe(kind);
  });

  it('posts commit statuses and reads them back, newest first and combined, by sha or branch', async () => {
    const posted = await forge.createCommitStatus({ ...repo, sha: SHA, state: 'pending', context: 'flotilla/linda', description: 'applying v2' });
    expect(posted).toMatchObject({ state: 'pending', forgeState: 'pending', context: 'flotilla/linda', description: 'applying v2' });
    await forge.createCommitStatus({ ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'x'.repeat(200), targetUrl: 'https://ci.example/run/1' });
    await forge.createCommitStatus({ ...repo, sha: SHA, state: 'failure', context: 'flotilla/bob', description: 'pull failed' });

    const list = await forge.listStatuses({ ...repo, ref: SHA });
    expect(list.map((s) => `${s.context}=${s.state}`)).toEqual(['flotilla/bob=failure', 'flotilla/linda=success', 'flotilla/linda=pending']);
    expect(list[1]!.description).toHaveLength(140);
    expect(list[1]!.targetUrl).toBe('https://ci.example/run/1');

    const combined = await forge.getCombinedStatus({ ...repo, ref: 'main' });
    expect(combined).toMatchObject({ sha: SHA, state: 'failure', totalCount: 2 });
    expect(combined.statuses.map((s) => s.state).sort()).toEqual(['failure', 'success']);
    expect(standIn.violations()).toEqual([]);
  });

  it('keeps one sticky comment per marker: created, updated, left alone when identical', async () => {
    const pr = await forge.openPullRequest({ ...repo, head: 'bump/linda-v2', title: 'Bump linda', body: '- linda' });
    const marker = '<!-- flotilla-plan -->';
    const first = await forge.upsertStickyComment({ ...repo, issueNumber: pr.number, marker, body: 'plan one' });
    expect(first.action).toBe('created');
    const second = await forge.upsertStickyComment({ ...repo, issueNumber: pr.number, marker, body: 'plan two' });
    expect(second).toMatchObject({ action: 'updated', id: first.id });
    const third = await forge.upsertStickyComment({ ...repo, issueNumber: pr.number, marker, body: 'plan two' });
    expect(third.action).toBe('unchanged');
    expect(standIn.comments('acme/fleet', pr.number).map((c) => c.body)).toEqual([`${marker}\nplan two`]);
    expect((await forge.listComments({ ...repo, issueNumber: pr.number })).map((c) => c.id)).toEqual([first.id]);
    expect(standIn.violations()).toEqual([]);
  });

  it('opens a pull request against the default branch and finds it again by its head', async () => {
    expect(await forge.findPullRequests({ ...repo, head: 'bump/linda-v2' })).toEqual([]);
    expect(await forge.getDefaultBranch(repo)).toBe('main');
    const pr = await forge.openPullRequest({ ...repo, head: 'bump/linda-v2', title: 'Bump linda', body: '- linda: v2' });
    expect(pr).toMatchObject({ state: 'open', head: 'bump/linda-v2', base: 'main', title: 'Bump linda' });
    expect(pr.url).toMatch(/^http/);
    expect((await forge.findPullRequests({ ...repo, head: 'bump/linda-v2' })).map((p) => p.number)).toEqual([pr.number]);
    expect(await forge.findPullRequests({ ...repo, head: 'bump/other' })).toEqual([]);
    expect(standIn.violations()).toEqual([]);
  });

  it('retries a 5xx and reports a refusal as a GitHubError with the status', async () => {
    standIn.failNext(1, { status: 503, match: { method: 'POST' } });
    await expect(forge.createCommitStatus({ ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' })).resolves.toMatchObject({ state: 'success' });
    const refused = await forge.openPullRequest({ ...repo, head: 'no-such-branch', base: 'main', title: 'x', body: '' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GitHubError);
    expect((refused as GitHubError).status).toBeGreaterThanOrEqual(400);
    expect((refused as GitHubError).message).not.toContain(standIn.token);
  });
});

describe('the Gitea forge, where Gitea differs', () => {
  it('reads Gitea\'s warning as a non-blocking success, keeping what Gitea said', async () => {
    const gitea = await startGiteaStandIn({ repos: ['acme/fleet'] });
    try {
      gitea.setRef('acme/fleet', 'main', SHA);
      gitea.addStatus('acme/fleet', { sha: SHA, state: 'warning', context: 'ci/lint', description: 'style', target_url: '' });
      const forge = createForge({ token: gitea.token, baseUrl: gitea.url });
      await forge.createCommitStatus({ ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'up' });
      const combined = await forge.getCombinedStatus({ ...repo, ref: 'main' });
      expect(combined).toMatchObject({ state: 'success', forgeState: 'warning' });
      expect(combined.statuses.find((s) => s.context === 'ci/lint')).toMatchObject({ state: 'success', forgeState: 'warning', targetUrl: null });
      expect(gitea.violations()).toEqual([]);
    } finally {
      await gitea.close();
    }
  });

  it('pages with page and limit: a combined status of 60 contexts, 55 pull requests', async () => {
    const gitea = await startGiteaStandIn({ repos: ['acme/fleet'] });
    try {
      gitea.setRef('acme/fleet', 'main', SHA);
      for (let i = 0; i < 60; i++) gitea.addStatus('acme/fleet', { sha: SHA, state: 'success', context: `flotilla/t${i}`, description: '', target_url: '' });
      const forge = createForge({ token: gitea.token, baseUrl: gitea.url });
      const combined = await forge.getCombinedStatus({ ...repo, ref: SHA });
      expect(combined.totalCount).toBe(60);
      expect(new Set(combined.statuses.map((s) => s.context)).size).toBe(60);

      for (let i = 0; i < 55; i++) {
        gitea.setRef('acme/fleet', `b${i}`, HEAD_SHA);
        await forge.openPullRequest({ ...repo, head: `b${i}`, base: 'main', title: `PR ${i}`, body: '' });
      }
      // The oldest is on the second page of Gitea's newest-first list.
      expect((await forge.findPullRequests({ ...repo, head: 'b0' })).map((p) => p.title)).toEqual(['PR 0']);
      const pages = gitea.requests().filter((r) => r.operation === 'repoListPullRequests').map((r) => r.query);
      expect(pages).toEqual([expect.objectContaining({ page: '1', limit: '50' }), expect.objectContaining({ page: '2', limit: '50' })]);
      expect(gitea.violations()).toEqual([]);
    } finally {
      await gitea.close();
    }
  });
});

describe('choosing the forge', () => {
  it('takes FLOTILLA_FORGE, else the API URL: /api/v1 is Gitea, /api/v3 and api.github.com are GitHub', () => {
    expect(detectForgeKind('https://git.example.org/api/v1')).toBe('gitea');
    expect(detectForgeKind('https://git.example.org/api/v1/')).toBe('gitea');
    expect(detectForgeKind('https://ghe.example.com/api/v3')).toBe('github');
    expect(detectForgeKind('https://api.github.com')).toBe('github');
    expect(detectForgeKind(undefined)).toBe('github');
    expect(detectForgeKind('https://code.example/gitea-behind-a-proxy', 'forgejo')).toBe('gitea');
    expect(detectForgeKind('https://git.example.org/api/v1', 'GitHub')).toBe('github');
    expect(() => detectForgeKind('https://x', 'gitlab')).toThrow(/FLOTILLA_FORGE/);
  });

  it('reads the same settings as the CLI and the agent (GITHUB_API_URL is set by GitHub, GHES and Gitea Actions)', () => {
    expect(forgeOptionsFromEnv({ GITHUB_API_URL: 'https://gitea.example/api/v1' })).toEqual({ baseUrl: 'https://gitea.example/api/v1' });
    expect(forgeOptionsFromEnv({ FLOTILLA_GITHUB_API: 'https://a/api/v1', GITHUB_API_URL: 'https://b', FLOTILLA_FORGE: 'gitea' })).toEqual({ baseUrl: 'https://a/api/v1', kind: 'gitea' });
  });
});
