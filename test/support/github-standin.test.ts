import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Octokit } from 'octokit';
import { startGitHubStandIn, type GitHubStandIn } from './github-standin.js';

const SHA = 'a1'.repeat(20);
const HEAD_SHA = 'b2'.repeat(20);

// Plain Octokit with its plugins off, so every answer of the stand-in is seen as sent.
function plainOctokit(standIn: GitHubStandIn, token = standIn.token): Octokit {
  return new Octokit({ auth: token, baseUrl: standIn.url, retry: { enabled: false }, throttle: { enabled: false }, log: { debug() {}, info() {}, warn() {}, error() {} } });
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    return (err as { status: number }).status;
  }
}

describe('GitHub stand-in', () => {
  let standIn: GitHubStandIn;
  let gh: Octokit;
  const repo = { owner: 'acme', repo: 'fleet' };

  beforeEach(async () => {
    standIn = await startGitHubStandIn({ repos: ['acme/fleet'] });
    standIn.setRef('acme/fleet', 'heads/main', SHA);
    standIn.setRef('acme/fleet', 'heads/bump/linda-v2', HEAD_SHA);
    gh = plainOctokit(standIn);
  });
  afterEach(async () => {
    await standIn.close();
  });

  it('serves the statuses API with answers that match the OpenAPI description', async () => {
    await gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'pending', context: 'flotilla/linda', description: 'applying v2.10.3' });
    await gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'v2.10.3 up, 6/6 healthy', target_url: 'https://example.test/run/1' });
    await gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'failure', context: 'Flotilla/Bob', description: 'pull failed: manifest unknown' });

    const list = await gh.rest.repos.listCommitStatusesForRef({ ...repo, ref: SHA });
    expect(list.data.map((s) => [s.context, s.state])).toEqual([
      ['Flotilla/Bob', 'failure'],
      ['flotilla/linda', 'success'],
      ['flotilla/linda', 'pending'],
    ]);

    // By branch name, as `flotilla status` asks for the head of tenants/<slug>.
    const combined = await gh.rest.repos.getCombinedStatusForRef({ ...repo, ref: 'main' });
    expect(combined.data.sha).toBe(SHA);
    expect(combined.data.state).toBe('failure');
    expect(combined.data.total_count).toBe(2);
    expect(combined.data.statuses.map((s) => s.state).sort()).toEqual(['failure', 'success']);
    expect(standIn.violations()).toEqual([]);
  });

  it('serves pull requests, sticky comments, the repo and git refs', async () => {
    const pr = await gh.rest.pulls.create({ ...repo, head: 'bump/linda-v2', base: 'main', title: 'Bump linda to v2.10.3', body: '- linda: v2.10.2 → v2.10.3' });
    expect(pr.status).toBe(201);
    expect(pr.data.head.sha).toBe(HEAD_SHA);
    expect((await gh.rest.pulls.list({ ...repo, head: 'acme:bump/linda-v2' })).data.map((p) => p.number)).toEqual([pr.data.number]);
    expect(await statusOf(gh.rest.pulls.create({ ...repo, head: 'bump/linda-v2', base: 'main', title: 'again' }))).toBe(422);
    expect(await statusOf(gh.rest.pulls.create({ ...repo, head: 'no-such-branch', base: 'main', title: 'x' }))).toBe(422);

    const comment = await gh.rest.issues.createComment({ ...repo, issue_number: pr.data.number, body: '<!-- flotilla-plan -->\nfirst' });
    await gh.rest.issues.updateComment({ ...repo, comment_id: comment.data.id, body: '<!-- flotilla-plan -->\nsecond' });
    const comments = await gh.rest.issues.listComments({ ...repo, issue_number: pr.data.number });
    expect(comments.data.map((c) => c.body)).toEqual(['<!-- flotilla-plan -->\nsecond']);

    await gh.rest.pulls.update({ ...repo, pull_number: pr.data.number, state: 'closed' });
    expect((await gh.rest.pulls.get({ ...repo, pull_number: pr.data.number })).data.state).toBe('closed');
    expect((await gh.rest.pulls.list({ ...repo })).data).toEqual([]);

    expect((await gh.rest.repos.get(repo)).data.default_branch).toBe('main');
    await gh.rest.git.createRef({ ...repo, ref: 'refs/heads/tenants/linda', sha: SHA });
    await gh.rest.git.updateRef({ ...repo, ref: 'heads/tenants/linda', sha: HEAD_SHA });
    expect((await gh.rest.git.getRef({ ...repo, ref: 'heads/tenants/linda' })).data.object.sha).toBe(HEAD_SHA);
    expect(standIn.violations()).toEqual([]);
  });

  it('pages lists with Link headers that Octokit follows', async () => {
    for (let i = 0; i < 130; i++) {
      await gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success', context: `ctx/${i}` });
    }
    const all = await gh.paginate(gh.rest.repos.listCommitStatusesForRef, { ...repo, ref: SHA, per_page: 50 });
    expect(all).toHaveLength(130);
    expect(new Set(all.map((s) => s.id)).size).toBe(130);
    expect(standIn.violations()).toEqual([]);
  });

  it('rejects a request the OpenAPI description does not allow, with 422, and records it', async () => {
    // Octokit's types would refuse these at compile time; a string route sends them anyway.
    const untyped = gh.request as (route: string, params: Record<string, unknown>) => Promise<unknown>;
    const bad = untyped('POST /repos/{owner}/{repo}/statuses/{sha}', { ...repo, sha: SHA, state: 'done', context: 'flotilla/linda' });
    await expect(bad).rejects.toMatchObject({ status: 422 });
    expect(await statusOf(untyped('POST /repos/{owner}/{repo}/pulls', { ...repo, title: 'no head or base', head: 42 }))).toBe(422);
    expect(await statusOf(untyped('GET /repos/{owner}/{repo}/pulls', { ...repo, state: 'merged' }))).toBe(422);

    expect(standIn.statuses('acme/fleet')).toEqual([]);
    const violations = standIn.violations();
    expect(violations.map((v) => [v.kind, v.operation])).toEqual([
      ['request', 'repos/create-commit-status'],
      ['request', 'pulls/create'],
      ['request', 'pulls/list'],
    ]);
    expect(violations[0]!.message).toContain('state');
    expect(violations[2]!.message).toContain('query/state');
  });

  it('refuses what GitHub refuses beyond the schema: short shas and long descriptions', async () => {
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: 'abc1234', state: 'success' }))).toBe(422);
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success', description: 'x'.repeat(141) }))).toBe(422);
    expect(standIn.statuses('acme/fleet')).toEqual([]);
  });

  it('checks its own answers against the description (a tampered answer is a violation)', async () => {
    await standIn.close();
    standIn = await startGitHubStandIn({
      repos: ['acme/fleet'],
      tamperResponse: (_op, body) => ({ ...(body as object), creator: undefined, id: 'not-a-number' }),
    });
    gh = plainOctokit(standIn);
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success' }))).toBe(500);
    const [violation] = standIn.violations();
    expect(violation?.kind).toBe('response');
    expect(violation?.message).toMatch(/id|creator/);
  });

  it('asks for the configured token', async () => {
    expect(await statusOf(plainOctokit(standIn, 'wrong-token').rest.repos.get(repo))).toBe(401);
    const anonymous = new Octokit({ baseUrl: standIn.url, retry: { enabled: false }, throttle: { enabled: false } });
    expect(await statusOf(anonymous.rest.repos.get(repo))).toBe(401);
    // Both schemes GitHub accepts.
    const bearer = await fetch(`${standIn.url}/repos/acme/fleet`, { headers: { authorization: `Bearer ${standIn.token}` } });
    expect(bearer.status).toBe(200);
  });

  it('tells an unimplemented operation from one GitHub does not have', async () => {
    expect(await statusOf(gh.request('GET /repos/{owner}/{repo}/releases', repo))).toBe(501);
    expect(await statusOf(gh.request('GET /no/such/thing'))).toBe(404);
    expect(standIn.violations().map((v) => v.kind)).toEqual(['unimplemented', 'unknown-route']);
  });

  it('injects faults only into matching requests, then recovers', async () => {
    standIn.failNext(2, { status: 500, match: { method: 'POST', path: /\/statuses\// } });
    standIn.failNext(1, { status: 403, headers: { 'retry-after': '3' } });
    expect(await statusOf(gh.rest.repos.get(repo))).toBe(403); // the 403 is the first fault matching a GET
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success' }))).toBe(500);
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success' }))).toBe(500);
    expect(await statusOf(gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success' }))).toBe(200);
    expect(await statusOf(gh.rest.repos.get(repo))).toBe(200); // faults used up
    expect(standIn.statuses('acme/fleet')).toHaveLength(1);
    expect(standIn.requests().map((r) => r.status)).toEqual([403, 500, 500, 201, 200]);
  });

  it('can answer late, after doing the work', async () => {
    standIn.delayNext(1000, { phase: 'after' });
    const aborted = gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success', request: { signal: AbortSignal.timeout(300) } });
    await expect(aborted).rejects.toBeTruthy();
    await standIn.idle();
    // Accepted although the client gave up: the case the outbox must not post twice.
    expect(standIn.statuses('acme/fleet')).toHaveLength(1);
    expect(standIn.requests()[0]).toMatchObject({ status: 201, clientGaveUp: true });
  });

  it('can answer late before doing the work, and then does not do it', async () => {
    standIn.delayNext(1000);
    const aborted = gh.rest.repos.createCommitStatus({ ...repo, sha: SHA, state: 'success', request: { signal: AbortSignal.timeout(300) } });
    await expect(aborted).rejects.toBeTruthy();
    await standIn.idle();
    expect(standIn.statuses('acme/fleet')).toEqual([]);
    expect(standIn.requests()).toEqual([expect.objectContaining({ status: 0, clientGaveUp: true })]);
  });
});
