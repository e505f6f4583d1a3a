import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GITEA_OPENAPI_FILE, giteaCombinedState, loadGiteaSpec, startGiteaStandIn, type GiteaStandIn } from './gitea-standin.js';

const SHA = 'a1'.repeat(20);
const HEAD_SHA = 'b2'.repeat(20);

describe('Gitea stand-in', () => {
  let gitea: GiteaStandIn;

  async function call(method: string, path: string, body?: unknown, token = gitea.token): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await fetch(`${gitea.url}${path}`, {
      method,
      headers: { authorization: `token ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json(), headers: res.headers };
  }

  beforeEach(async () => {
    gitea = await startGiteaStandIn({ repos: ['acme/fleet'] });
    gitea.setRef('acme/fleet', 'main', SHA);
    gitea.setRef('acme/fleet', 'bump/linda-v2', HEAD_SHA);
  });
  afterEach(async () => {
    await gitea.close();
  });

  it('vendors its description with the source and commit named', () => {
    const spec = loadGiteaSpec();
    expect(spec.info['x-vendored-from']).toMatchObject({ repository: 'https://github.com/go-gitea/gitea', path: 'templates/swagger/v1-openapi3.generated.json' });
    expect(spec.info['x-vendored-from'].commit).toMatch(/^[0-9a-f]{40}$/);
    expect(readFileSync(join(GITEA_OPENAPI_FILE, '..', 'README.md'), 'utf8')).toContain(spec.info['x-vendored-from'].commit);
    expect(gitea.url).toMatch(/\/api\/v1$/);
  });

  it('creates statuses with `state`, answers with `status`, and combines the newest per context', async () => {
    const created = await call('POST', `/repos/acme/fleet/statuses/${SHA}`, { state: 'pending', context: 'flotilla/linda', description: 'applying' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'pending', context: 'flotilla/linda' });
    await call('POST', `/repos/acme/fleet/statuses/${SHA}`, { state: 'success', context: 'flotilla/linda', description: 'up', target_url: 'https://ci.example/1' });
    gitea.addStatus('acme/fleet', { sha: SHA, state: 'warning', context: 'ci/lint', description: 'style', target_url: '' });

    const combined = await call('GET', '/repos/acme/fleet/commits/main/status');
    expect(combined.body).toMatchObject({ sha: SHA, state: 'warning', total_count: 2 });
    expect(combined.body.statuses.map((s: { status: string }) => s.status).sort()).toEqual(['success', 'warning']);

    const list = await call('GET', `/repos/acme/fleet/commits/${SHA}/statuses?page=1&limit=2`);
    expect(list.body.map((s: { context: string; status: string }) => `${s.context}=${s.status}`)).toEqual(['ci/lint=warning', 'flotilla/linda=success']);
    expect(list.headers.get('x-total-count')).toBe('3');
    expect(list.headers.get('link')).toContain('rel="next"');
    expect(gitea.violations()).toEqual([]);
  });

  it('serves pull requests and their comments through the issues API', async () => {
    const pr = await call('POST', '/repos/acme/fleet/pulls', { head: 'bump/linda-v2', base: 'main', title: 'Bump linda', body: '- linda' });
    expect(pr.status).toBe(201);
    expect(pr.body.head).toMatchObject({ ref: 'bump/linda-v2', sha: HEAD_SHA });
    expect((await call('POST', '/repos/acme/fleet/pulls', { head: 'bump/linda-v2', base: 'main', title: 'again' })).status).toBe(409);
    expect((await call('POST', '/repos/acme/fleet/pulls', { head: 'nope', base: 'main', title: 'x' })).status).toBe(404);
    expect((await call('GET', '/repos/acme/fleet/pulls?state=open')).body.map((p: { number: number }) => p.number)).toEqual([pr.body.number]);

    const comment = await call('POST', `/repos/acme/fleet/issues/${pr.body.number}/comments`, { body: '<!-- flotilla-plan -->\nfirst' });
    expect(comment.status).toBe(201);
    const edited = await call('PATCH', `/repos/acme/fleet/issues/comments/${comment.body.id}`, { body: '<!-- flotilla-plan -->\nsecond' });
    expect(edited.body.body).toContain('second');
    const comments = await call('GET', `/repos/acme/fleet/issues/${pr.body.number}/comments`);
    expect(comments.body.map((c: { body: string }) => c.body)).toEqual(['<!-- flotilla-plan -->\nsecond']);
    expect((await call('GET', '/repos/acme/fleet')).body.default_branch).toBe('main');
    expect(gitea.violations()).toEqual([]);
  });

  it('records requests Gitea would refuse: a bad state, GitHub\'s per_page, a missing body; and a bad token', async () => {
    expect((await call('POST', `/repos/acme/fleet/statuses/${SHA}`, { state: 'cancelled', context: 'x' })).status).toBe(422);
    expect((await call('GET', `/repos/acme/fleet/commits/${SHA}/statuses?per_page=100`)).status).toBe(422);
    expect((await call('POST', '/repos/acme/fleet/pulls')).status).toBe(422);
    expect((await call('GET', '/repos/acme/fleet/git/refs')).status).toBe(404);
    expect(gitea.violations().map((v) => v.kind)).toEqual(['request', 'request', 'request', 'unknown-route']);
    expect((await call('GET', '/repos/acme/fleet', undefined, 'wrong')).status).toBe(401);
  });

  it('records a response that does not match the description', async () => {
    await gitea.close();
    gitea = await startGiteaStandIn({ repos: ['acme/fleet'], tamperResponse: (op, body) => (op === 'repoCreateStatus' ? { ...(body as object), id: 'not-a-number' } : body) });
    const r = await call('POST', `/repos/acme/fleet/statuses/${SHA}`, { state: 'success', context: 'x' });
    expect(r.status).toBe(500);
    expect(gitea.violations()).toEqual([expect.objectContaining({ kind: 'response', operation: 'repoCreateStatus' })]);
  });

  it('combines as Gitea does: failure over pending over warning over success', () => {
    expect(giteaCombinedState([])).toBe('pending');
    expect(giteaCombinedState(['success', 'error'])).toBe('failure');
    expect(giteaCombinedState(['success', 'pending', 'warning'])).toBe('pending');
    expect(giteaCombinedState(['success', 'warning', 'skipped'])).toBe('warning');
    expect(giteaCombinedState(['success', 'skipped'])).toBe('success');
  });
});
