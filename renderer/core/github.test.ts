import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGitHubStandIn, type GitHubStandIn } from '../../test/support/github-standin.js';
import { GitHubError, SettingError } from './errors.js';
import {
  createCommitStatus,
  createGitHubClient,
  getCombinedStatus,
  listStatuses,
  parseRepoSlug,
  redact,
  repoSlugFromUrl,
  truncateDescription,
  type GitHubClientOptions,
} from './github.js';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const TOKEN = 'ghp_standinSecretToken1234567890abcdef';
const SHA = 'c3'.repeat(20);
const repo = { owner: 'acme', repo: 'fleet' };

describe('GitHub client against the OpenAPI-checked stand-in', () => {
  let standIn: GitHubStandIn;
  let logged: string[];

  beforeEach(async () => {
    standIn = await startGitHubStandIn({ token: TOKEN, repos: ['acme/fleet'] });
    standIn.setRef('acme/fleet', 'heads/tenants/linda', SHA);
    logged = [];
  });
  afterEach(async () => {
    expect(standIn.violations()).toEqual([]);
    await standIn.close();
  });

  // Real plugins, real HTTP; only the waits are scaled down (1 ms per second of retry-after).
  function client(overrides: Partial<GitHubClientOptions> = {}) {
    const log = (level: string) => (m: string) => logged.push(`${level}: ${m}`);
    return createGitHubClient({
      token: TOKEN,
      baseUrl: standIn.url,
      retry: { retries: 3, baseDelayMs: 1 },
      throttle: { msPerRetryAfterSecond: 1, minWriteIntervalMs: 0 },
      log: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
      ...overrides,
    });
  }

  it('posts statuses and reads them back, newest first and combined', async () => {
    const gh = client();
    await createCommitStatus(gh, { ...repo, sha: SHA, state: 'pending', context: 'flotilla/linda', description: 'applying v2.10.3' });
    const created = await createCommitStatus(gh, { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'v2.10.3 up, 6/6 healthy', targetUrl: 'https://example.test/hosts/linda' });
    expect(created).toMatchObject({ state: 'success', context: 'flotilla/linda', targetUrl: 'https://example.test/hosts/linda' });

    const statuses = await listStatuses(gh, { ...repo, ref: SHA });
    expect(statuses.map((s) => `${s.state} ${s.description}`)).toEqual(['success v2.10.3 up, 6/6 healthy', 'pending applying v2.10.3']);

    const combined = await getCombinedStatus(gh, { ...repo, ref: 'tenants/linda' });
    expect(combined).toMatchObject({ state: 'success', sha: SHA, totalCount: 1 });
    expect(combined.statuses[0]?.description).toBe('v2.10.3 up, 6/6 healthy');
  });

  it('cuts descriptions to the 140 characters GitHub accepts', async () => {
    const missing = Array.from({ length: 30 }, (_, i) => `SECRET_${i}`).join(', ');
    await createCommitStatus(client(), { ...repo, sha: SHA, state: 'failure', context: 'flotilla/linda', description: `refused: missing ${missing}` });
    const [stored] = standIn.statuses('acme/fleet');
    expect(Array.from(stored!.description!)).toHaveLength(140);
    expect(stored!.description).toMatch(/^refused: missing SECRET_0, SECRET_1, .*…$/);
    expect(truncateDescription('short')).toBe('short');
  });

  it('retries a 500 through the retry plugin and posts the status once', async () => {
    standIn.failNext(2, { status: 500 });
    await createCommitStatus(client(), { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' });
    expect(standIn.requests().map((r) => r.status)).toEqual([500, 500, 201]);
    expect(standIn.statuses('acme/fleet')).toHaveLength(1);
  });

  it('gives up after the retries with a GitHubError naming the operation and status', async () => {
    standIn.failNext(10, { status: 502 });
    const err = await createCommitStatus(client({ retry: { retries: 2, baseDelayMs: 1 } }), { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 502, operation: expect.stringContaining('create commit status flotilla/linda=success on acme/fleet@') });
    expect(standIn.requests()).toHaveLength(3);
  });

  it('honours retry-after on a secondary rate limit', async () => {
    standIn.failNext(1, { status: 403, headers: { 'retry-after': '7' } });
    await createCommitStatus(client(), { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' });
    expect(standIn.requests().map((r) => r.status)).toEqual([403, 201]);
    expect(logged).toContainEqual(expect.stringMatching(/secondary rate limit on POST \/repos\/\{owner\}\/\{repo\}\/statuses\/\{sha\}: retrying in 7s/));
  });

  it('waits out a primary rate limit until its reset', async () => {
    standIn.failNext(1, { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 2) } });
    await listStatuses(client(), { ...repo, ref: SHA });
    expect(standIn.requests().map((r) => r.status)).toEqual([403, 200]);
    expect(logged).toContainEqual(expect.stringMatching(/primary rate limit on GET .*: retrying in [23]s/));
  });

  it('does not sit out a long rate limit in-process: the caller retries later', async () => {
    standIn.failNext(1, { status: 429, headers: { 'retry-after': '3600' } });
    const err = await createCommitStatus(client(), { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect((err as GitHubError).message).toMatch(/HTTP 429.*secondary rate limit.*retry-after 3600s/);
    expect(standIn.requests()).toHaveLength(1);
  });

  it('times out a request that gets no answer', async () => {
    standIn.delayNext(2000);
    const err = await listStatuses(client({ timeoutMs: 100, retry: false }), { ...repo, ref: SHA }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect((err as GitHubError).message).toMatch(/no answer in time/);
    expect((err as GitHubError).status).toBeUndefined();
  });

  it('never puts the token in errors or logs', async () => {
    const wrong = createGitHubClient({ token: `${TOKEN}-revoked`, baseUrl: standIn.url, retry: false, throttle: false });
    const unauthorized = await listStatuses(wrong, { ...repo, ref: SHA }).catch((e: unknown) => e);
    expect(unauthorized).toMatchObject({ status: 401 });

    // A server that echoes the credentials back (some proxies do) must not leak them either.
    standIn.failNext(5, { status: 500, message: `upstream said: Authorization: token ${TOKEN} rejected` });
    const echoed = await createCommitStatus(client({ retry: { retries: 1, baseDelayMs: 1 } }), { ...repo, sha: SHA, state: 'success', context: 'flotilla/linda', description: 'ok' }).catch((e: unknown) => e);
    expect(echoed).toBeInstanceOf(GitHubError);

    const offline = createGitHubClient({ token: TOKEN, baseUrl: `http://127.0.0.1:${await closedPort()}`, retry: false, throttle: false });
    const refused = await listStatuses(offline, { ...repo, ref: SHA }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GitHubError);
    expect((refused as GitHubError).message).toMatch(/ECONNREFUSED/);

    for (const err of [unauthorized, echoed, refused]) {
      const everything = `${String(err)}\n${inspect(err, { depth: 10 })}\n${JSON.stringify(err)}`;
      expect(everything).not.toContain(TOKEN);
      expect(everything).not.toContain(TOKEN.slice(4));
    }
    expect(logged.join('\n')).not.toContain(TOKEN);
  });
});

describe('repository names', () => {
  it('parses owner/name and names the setting when it cannot', () => {
    expect(parseRepoSlug('acme/fleet')).toEqual({ owner: 'acme', repo: 'fleet' });
    expect(parseRepoSlug(' acme/fleet.git ')).toEqual({ owner: 'acme', repo: 'fleet' });
    for (const bad of ['acme', 'acme/fleet/extra', '/fleet', 'acme/', 'ac me/fleet', 'acme/..']) {
      expect(() => parseRepoSlug(bad, 'FLOTILLA_GITHUB_REPO')).toThrow(SettingError);
    }
    expect(() => parseRepoSlug('nope', 'FLOTILLA_GITHUB_REPO')).toThrow(/^FLOTILLA_GITHUB_REPO: must be owner\/name/);
  });

  it.each([
    ['https://github.com/acme/fleet.git', { owner: 'acme', repo: 'fleet' }],
    ['https://github.com/acme/fleet', { owner: 'acme', repo: 'fleet' }],
    ['https://x-access-token:ghs_abc@github.com/acme/fleet.git', { owner: 'acme', repo: 'fleet' }],
    ['git@github.com:acme/fleet.git', { owner: 'acme', repo: 'fleet' }],
    ['ssh://git@ghe.example.com/acme/fleet.git', { owner: 'acme', repo: 'fleet' }],
    ['https://ghe.example.com/acme/fleet/', { owner: 'acme', repo: 'fleet' }],
    ['http://127.0.0.1:8080/fleet.git', undefined],
    ['https://gitlab.example.com/group/sub/fleet.git', undefined],
    ['not a url', undefined],
  ])('derives owner/name from %s', (url, expected) => {
    expect(repoSlugFromUrl(url)).toEqual(expected);
  });
});

describe('redact', () => {
  it('removes given secrets, token-shaped strings and URL credentials', () => {
    expect(redact('a secret-value b', ['secret-value'])).toBe('a *** b');
    expect(redact('got ghp_abcdefghijklmnopqrstuvwxyz0123 back')).toBe('got *** back');
    expect(redact('https://user:pw@github.com/acme/fleet.git')).toBe('https://***@github.com/acme/fleet.git');
    expect(redact('Authorization: Bearer abcdefghijklmnopqrstuvwxyz')).toBe('Authorization: Bearer ***');
    expect(redact('the token expired')).toBe('the token expired');
  });
});
