import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGiteaStandIn, type GiteaStandIn } from '../test/support/gitea-standin.js';
import { createForge } from '../renderer/core/forge.js';
import { createStatusReporter, type StatusReporter } from './report.js';
import type { AgentConfig } from './config.js';
import { GitHubError } from '../renderer/core/errors.js';
import { createGitHubClient, type CommitStatusInput, type GitHubClientOptions } from '../renderer/core/github.js';
import {
  SendBudget,
  STATUS_BUDGET_FILE,
  StatusOutbox,
  forgeStatusAccepted,
  forgeStatusSend,
  githubStatusAccepted,
  githubStatusSend,
  logStatusSend,
  type StatusSend,
} from './status-outbox.js';
import { redactValues } from './redact.js';

const TENANT_SHA = 'd4'.repeat(20);
const SOURCE_SHA = 'e5'.repeat(20);
const NEXT_TENANT_SHA = 'f6'.repeat(20);
const NEXT_SOURCE_SHA = '07'.repeat(20);

function status(sha: string, state: CommitStatusInput['state'], description: string, context = 'flotilla/linda'): CommitStatusInput {
  return { owner: 'acme', repo: 'fleet', sha, state, context, description };
}

/** What a recording send saw, as `context state sha-prefix`. */
function recordingSend(): { send: StatusSend; seen: string[] } {
  const seen: string[] = [];
  return { seen, send: async (s) => void seen.push(`${s.context} ${s.state} ${s.sha.slice(0, 4)}`) };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flotilla-outbox-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('StatusOutbox on disk', () => {
  it('sends in the order queued and removes what was sent', async () => {
    const outbox = new StatusOutbox(join(dir, 'outbox'));
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying'));
    await outbox.enqueue(status(SOURCE_SHA, 'pending', 'applying'));
    const { send, seen } = recordingSend();
    const result = await outbox.flush(send);
    expect(seen).toEqual(['flotilla/linda pending d4d4', 'flotilla/linda pending e5e5']);
    expect(result).toMatchObject({ sent: 2, pending: 0 });
    expect(await readdir(join(dir, 'outbox'))).toEqual([]);
  });

  it('survives a restart: a new process finds the queue as it was', async () => {
    await new StatusOutbox(dir).enqueue(status(TENANT_SHA, 'pending', 'applying'));
    await new StatusOutbox(dir).enqueue(status(TENANT_SHA, 'success', 'up', 'flotilla/bob'));
    const pending = await new StatusOutbox(dir).pending();
    expect(pending.map((p) => [p.status.context, p.status.state])).toEqual([
      ['flotilla/linda', 'pending'],
      ['flotilla/bob', 'success'],
    ]);
  });

  it('keeps only the newest status per commit and context (GitHub shows only that one)', async () => {
    const outbox = new StatusOutbox(dir);
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying'));
    await outbox.enqueue(status(SOURCE_SHA, 'pending', 'applying'));
    await outbox.enqueue(status(TENANT_SHA, 'success', 'up'));
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying', 'Flotilla/Bob'));
    await outbox.enqueue(status(TENANT_SHA, 'failure', 'pull failed', 'flotilla/bob')); // contexts are case-insensitive
    const { send, seen } = recordingSend();
    await outbox.flush(send);
    expect(seen).toEqual(['flotilla/linda pending e5e5', 'flotilla/linda success d4d4', 'flotilla/bob failure d4d4']);
  });

  it('stops at the first failure and keeps the order for the next flush', async () => {
    const outbox = new StatusOutbox(dir);
    for (const ctx of ['a', 'b', 'c']) await outbox.enqueue(status(TENANT_SHA, 'success', 'up', `flotilla/${ctx}`));
    const seen: string[] = [];
    let calls = 0;
    const flaky: StatusSend = async (s) => {
      if (++calls === 2) throw new GitHubError('create commit status', 503, 'unavailable');
      seen.push(s.context);
    };
    const first = await outbox.flush(flaky);
    expect(first).toMatchObject({ sent: 1, pending: 2, stopped: { reason: 'failure' } });
    const second = await outbox.flush(flaky);
    expect(second).toMatchObject({ sent: 2, pending: 0 });
    expect(seen).toEqual(['flotilla/a', 'flotilla/b', 'flotilla/c']);
  });

  it('moves a status GitHub refuses for good aside instead of blocking the queue', async () => {
    const lines: string[] = [];
    const outbox = new StatusOutbox(dir, { log: (l) => lines.push(l) });
    await outbox.enqueue(status('abc', 'success', 'up', 'flotilla/a'));
    await outbox.enqueue(status(TENANT_SHA, 'success', 'up', 'flotilla/b'));
    const seen: string[] = [];
    const result = await outbox.flush(async (s) => {
      if (s.sha === 'abc') throw new GitHubError('create commit status', 422, 'No commit found for SHA: abc');
      seen.push(s.context);
    });
    expect(result).toMatchObject({ sent: 1, rejected: 1, pending: 0 });
    expect(seen).toEqual(['flotilla/b']);
    const rejected = (await readFile(join(dir, 'rejected.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { status: CommitStatusInput; error: string });
    expect(rejected).toMatchObject([{ status: { sha: 'abc', context: 'flotilla/a' }, error: expect.stringContaining('No commit found') }]);
    expect(lines.join('\n')).toContain('rejected.jsonl');
  });

  it('lets statuses queued during a flush wait their turn', async () => {
    const outbox = new StatusOutbox(dir);
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying'));
    const seen: string[] = [];
    const result = await outbox.flush(async (s) => {
      seen.push(`${s.state} ${s.sha.slice(0, 4)}`);
      if (seen.length === 1) {
        // The apply finishes while the pending status is on the wire.
        await outbox.enqueue(status(TENANT_SHA, 'success', 'up'));
        await outbox.enqueue(status(SOURCE_SHA, 'success', 'up'));
      }
    });
    expect(seen).toEqual(['pending d4d4', 'success d4d4', 'success e5e5']);
    expect(result.pending).toBe(0);
  });

  it('without a token, writes statuses to the log only', async () => {
    const lines: string[] = [];
    const outbox = new StatusOutbox(dir);
    await outbox.enqueue(status(TENANT_SHA, 'failure', 'refused: missing POSTGRES_PASSWORD'));
    await outbox.flush(logStatusSend((l) => lines.push(l)));
    expect(lines).toEqual([expect.stringContaining('flotilla/linda=failure on acme/fleet@d4d4d4d4d4d4 ("refused: missing POSTGRES_PASSWORD") (not sent: the agent has no GitHub token)')]);
  });
});

describe('SendBudget', () => {
  it('allows 80 sends a minute and 500 an hour', () => {
    let t = 0;
    const budget = new SendBudget({ now: () => t });
    for (let i = 0; i < 80; i++) {
      expect(budget.waitMs()).toBe(0);
      budget.record();
    }
    expect(budget.waitMs()).toBe(60_000);
    t = 60_000;
    expect(budget.waitMs()).toBe(0);
    // Spread out so the minute limit never bites: the hour limit does at 500.
    for (let i = 80; i < 500; i++) {
      t += 1_000;
      expect(budget.waitMs()).toBe(0);
      budget.record();
    }
    t += 1_000;
    expect(budget.waitMs()).toBe(3_600_000 - t); // until the first send leaves the hour
    t = 3_600_000;
    expect(budget.waitMs()).toBe(0);
  });

  it('keeps the budget across processes (cron starts one per poll), in the state dir', async () => {
    let t = 1_000_000;
    const file = join(dir, STATUS_BUDGET_FILE);
    const first = new StatusOutbox(dir, { now: () => t, budget: new SendBudget({ perMinute: 2, now: () => t, file }) });
    for (const ctx of ['a', 'b', 'c']) await first.enqueue(status(TENANT_SHA, 'success', 'up', `flotilla/${ctx}`));
    const { send, seen } = recordingSend();
    expect(await first.flush(send)).toMatchObject({ sent: 2, pending: 1 });
    t += 1_000;
    const next = new StatusOutbox(dir, { now: () => t, budget: new SendBudget({ perMinute: 2, now: () => t, file }) });
    expect(await next.flush(send)).toMatchObject({ sent: 0, pending: 1, stopped: { reason: 'budget', retryInMs: 59_000 } });
    expect(seen).toHaveLength(2);
  });

  it('waits as long as a send said the token has no writes left', async () => {
    let t = 1_000_000;
    const budget = () => new SendBudget({ now: () => t, file: join(dir, STATUS_BUDGET_FILE) });
    const outbox = new StatusOutbox(join(dir, 'outbox'), { now: () => t, budget: budget() });
    for (const ctx of ['a', 'b']) await outbox.enqueue(status(TENANT_SHA, 'success', 'up', `flotilla/${ctx}`));
    const seen: string[] = [];
    const lastWrite: StatusSend = async (s) => {
      seen.push(s.context);
      return { retryAt: t + 600_000 };
    };
    expect(await outbox.flush(lastWrite)).toMatchObject({ sent: 1, pending: 1, stopped: { reason: 'budget', retryInMs: 600_000 } });
    // A new process reads the same wait from the outbox folder.
    expect(await new StatusOutbox(join(dir, 'outbox'), { now: () => t, budget: budget() }).flush(lastWrite)).toMatchObject({ sent: 0, stopped: { reason: 'budget' } });
    t += 600_000;
    expect(await outbox.flush(lastWrite)).toMatchObject({ sent: 1, pending: 0 });
    expect(seen).toEqual(['flotilla/a', 'flotilla/b']);
  });

  it('makes a flush stop and say when to come back', async () => {
    let t = 1_000_000;
    const outbox = new StatusOutbox(dir, { now: () => t, budget: new SendBudget({ perMinute: 2, now: () => t }) });
    for (const ctx of ['a', 'b', 'c']) await outbox.enqueue(status(TENANT_SHA, 'success', 'up', `flotilla/${ctx}`));
    const { send, seen } = recordingSend();
    expect(await outbox.flush(send)).toMatchObject({ sent: 2, pending: 1, stopped: { reason: 'budget', retryInMs: 60_000 } });
    t += 60_000;
    expect(await outbox.flush(send)).toMatchObject({ sent: 1, pending: 0 });
    expect(seen).toHaveLength(3);
  });
});

describe('StatusOutbox through the GitHub client and the OpenAPI-checked stand-in', () => {
  let standIn: GitHubStandIn;
  beforeEach(async () => {
    standIn = await startGitHubStandIn({ repos: ['acme/fleet'] });
  });
  afterEach(async () => {
    expect(standIn.violations()).toEqual([]);
    await standIn.close();
  });

  function client(overrides: Partial<GitHubClientOptions> = {}) {
    return createGitHubClient({
      token: standIn.token,
      baseUrl: standIn.url,
      retry: { retries: 2, baseDelayMs: 1 },
      throttle: { msPerRetryAfterSecond: 1, minWriteIntervalMs: 0, maxRetries: 1 },
      log: { debug() {}, info() {}, warn() {}, error() {} },
      ...overrides,
    });
  }

  it('rides out an outage: nothing lost, nothing duplicated, order kept, no burst', async () => {
    const gh = client();
    // The outbox's clock, moved on where GitHub asked the agent to wait.
    let skew = 0;
    const outbox = new StatusOutbox(dir, { now: () => Date.now() + skew });
    const flush = () => outbox.flush(githubStatusSend(gh), { isAlreadyAccepted: githubStatusAccepted(gh) });

    // Before the outage: the first apply starts and its pending statuses arrive.
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying v2.10.3'));
    await outbox.enqueue(status(SOURCE_SHA, 'pending', 'applying v2.10.3'));
    expect(await flush()).toMatchObject({ sent: 2, pending: 0 });

    // The status API goes down in every way it can: 500s, rate limits, no answer.
    standIn.failNext(1000, { status: 500, match: { method: 'POST', path: /\/statuses\// } });
    await outbox.enqueue(status(TENANT_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));
    await outbox.enqueue(status(SOURCE_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));
    expect(await flush()).toMatchObject({ sent: 0, pending: 2, stopped: { reason: 'failure' } });

    standIn.clearFaults();
    standIn.failNext(1000, { status: 403, headers: { 'retry-after': '120' } }); // longer than the client waits in-process
    await outbox.enqueue(status(NEXT_TENANT_SHA, 'pending', 'applying v2.10.4'));
    await outbox.enqueue(status(NEXT_SOURCE_SHA, 'pending', 'applying v2.10.4'));
    const waited = await flush();
    expect(waited).toMatchObject({ sent: 0, stopped: { reason: 'budget' } });
    // GitHub's retry-after is honoured: no send, not even a try, until it has passed.
    expect((waited.stopped as { retryInMs: number }).retryInMs).toBeGreaterThan(110_000);
    const asked = standIn.requests().length;
    expect(await flush()).toMatchObject({ sent: 0, stopped: { reason: 'budget' } });
    expect(standIn.requests().length).toBe(asked);
    skew += 121_000;

    standIn.clearFaults();
    standIn.failNext(1000, { status: 403, headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600) } });
    await outbox.enqueue(status(NEXT_TENANT_SHA, 'failure', 'pull failed: manifest unknown'));
    await outbox.enqueue(status(NEXT_SOURCE_SHA, 'failure', 'pull failed: manifest unknown'));
    const spent = await flush();
    // The token's primary limit is spent until x-ratelimit-reset, for every host that shares it.
    expect(spent).toMatchObject({ sent: 0, stopped: { reason: 'budget' } });
    expect((spent.stopped as { retryInMs: number }).retryInMs).toBeGreaterThan(3_000_000);
    skew += 3_601_000;

    // A hung API, with GitHub accepting the status after the client gave up: the one case a naive retry duplicates.
    standIn.clearFaults();
    const impatient = client({ timeoutMs: 300, retry: false });
    standIn.delayNext(1000, { phase: 'after', match: { method: 'POST' } });
    const hung = await outbox.flush(githubStatusSend(impatient));
    expect(hung).toMatchObject({ sent: 0, stopped: { reason: 'failure' } });
    expect(String((hung.stopped as { error: unknown }).error)).toMatch(/no answer in time/);
    await standIn.idle(); // the late answer is written (to a client that left)

    // The coalesced queue: one status per (commit, context), the newest, in order.
    expect((await outbox.pending()).map((p) => `${p.status.sha.slice(0, 4)} ${p.status.state}`)).toEqual([
      'd4d4 success',
      'e5e5 success',
      'f6f6 failure',
      '0707 failure',
    ]);

    // Recovery.
    const recovered = await flush();
    expect(recovered).toMatchObject({ sent: 3, alreadyAccepted: 1, pending: 0 });

    const arrived = standIn.statuses('acme/fleet').map((s) => `${s.sha.slice(0, 4)} ${s.state}`);
    expect(arrived).toEqual([
      'd4d4 pending',
      'e5e5 pending',
      'd4d4 success', // accepted although the client timed out, not posted again
      'e5e5 success',
      'f6f6 failure',
      '0707 failure',
    ]);
    // What a person sees on each commit: pending, then the outcome; never a stale pending on top.
    for (const sha of [TENANT_SHA, SOURCE_SHA, NEXT_TENANT_SHA, NEXT_SOURCE_SHA]) {
      const combined = await gh.rest.repos.getCombinedStatusForRef({ owner: 'acme', repo: 'fleet', ref: sha });
      expect(combined.data.state).not.toBe('pending');
    }
    // No burst: status writes after recovery are the coalesced few, not one per attempt.
    const postsAfterRecovery = standIn.requests().filter((r) => r.method === 'POST' && r.status === 201 && !r.clientGaveUp);
    expect(postsAfterRecovery).toHaveLength(2 + 3);
  });

  it('masks host values before the 140-character cut, also in entries queued before the agent knew them', async () => {
    const gh = client();
    const secret = 'Qm9vdHN0cmFwLWtleS0xOTg0LWRvLW5vdC1sZWFrLXg';
    // 130 characters before the value: cut at 140, 9 of its characters would be left.
    const description = `post-up hook migrate failed: ${'x'.repeat(101)}${secret}`;
    const held: string[] = [];
    const outbox = new StatusOutbox(dir, { redact: (text) => redactValues(text, held) });
    await outbox.enqueue(status(TENANT_SHA, 'failure', description));
    held.push(secret);
    await outbox.enqueue(status(SOURCE_SHA, 'failure', description));
    expect(await outbox.flush(githubStatusSend(gh))).toMatchObject({ sent: 2, pending: 0 });
    const posted = standIn.statuses('acme/fleet').map((s) => s.description ?? '');
    expect(posted).toHaveLength(2);
    for (const text of posted) {
      expect(text.startsWith(`post-up hook migrate failed: ${'x'.repeat(101)}***`)).toBe(true);
      for (let i = 0; i + 8 <= secret.length; i++) expect(text).not.toContain(secret.slice(i, i + 8));
    }
  });

  it('does not post twice when the agent died right after GitHub accepted', async () => {
    const gh = client();
    await new StatusOutbox(dir).enqueue(status(TENANT_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));

    // The send reaches GitHub, then the process dies before it can remove the entry.
    const dying = new StatusOutbox(dir);
    const died = await dying.flush(async (s) => {
      await githubStatusSend(gh)(s);
      throw new Error('killed');
    });
    expect(died.stopped?.reason).toBe('failure');

    const restarted = new StatusOutbox(dir);
    expect((await restarted.pending())[0]?.maybeSent).toBe(true);
    expect(await restarted.flush(githubStatusSend(gh), { isAlreadyAccepted: githubStatusAccepted(gh) })).toMatchObject({ sent: 0, alreadyAccepted: 1, pending: 0 });
    expect(standIn.statuses('acme/fleet')).toHaveLength(1);
  });

  it('sends again when an interrupted status did not reach GitHub', async () => {
    const gh = client();
    await new StatusOutbox(dir).enqueue(status(TENANT_SHA, 'success', 'v2.10.3 up'));
    await new StatusOutbox(dir).flush(async () => {
      throw new Error('killed before the request left');
    });
    const result = await new StatusOutbox(dir).flush(githubStatusSend(gh), { isAlreadyAccepted: githubStatusAccepted(gh) });
    expect(result).toMatchObject({ sent: 1, alreadyAccepted: 0 });
    expect(standIn.statuses('acme/fleet').map((s) => s.state)).toEqual(['success']);
  });
});

describe('StatusOutbox through the Gitea forge and the OpenAPI-checked Gitea stand-in', () => {
  let gitea: GiteaStandIn;
  beforeEach(async () => {
    gitea = await startGiteaStandIn({ repos: ['acme/fleet'] });
  });
  afterEach(async () => {
    expect(gitea.violations()).toEqual([]);
    await gitea.close();
  });

  const forge = () => createForge({ token: gitea.token, baseUrl: gitea.url, retry: { retries: 1, baseDelayMs: 1 }, timeoutMs: 5_000 });

  it('rides out an outage and a rate limit: nothing lost, nothing duplicated, order kept', async () => {
    let skew = 0;
    const outbox = new StatusOutbox(dir, { now: () => Date.now() + skew });
    const f = forge();
    const flush = () => outbox.flush(forgeStatusSend(f), { isAlreadyAccepted: forgeStatusAccepted(f) });
    await outbox.enqueue(status(TENANT_SHA, 'pending', 'applying v2.10.3'));
    expect(await flush()).toMatchObject({ sent: 1, pending: 0 });

    gitea.failNext(1000, { status: 502, match: { method: 'POST' } });
    await outbox.enqueue(status(TENANT_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));
    await outbox.enqueue(status(SOURCE_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));
    expect(await flush()).toMatchObject({ sent: 0, pending: 2, stopped: { reason: 'failure' } });

    gitea.clearFaults();
    gitea.failNext(1, { status: 429, headers: { 'retry-after': '120' }, match: { method: 'POST' } });
    const waited = await flush();
    expect(waited).toMatchObject({ sent: 0, stopped: { reason: 'budget' } });
    expect((waited.stopped as { retryInMs: number }).retryInMs).toBeGreaterThan(110_000);
    skew += 121_000;

    expect(await flush()).toMatchObject({ sent: 2, pending: 0 });
    expect(gitea.statuses('acme/fleet').map((s) => `${s.sha.slice(0, 4)} ${s.state}`)).toEqual(['d4d4 pending', 'd4d4 success', 'e5e5 success']);
  });

  it('does not post twice when the agent died right after Gitea accepted', async () => {
    const f = forge();
    await new StatusOutbox(dir).enqueue(status(TENANT_SHA, 'success', 'v2.10.3 up, 6/6 healthy'));
    const died = await new StatusOutbox(dir).flush(async (s) => {
      await forgeStatusSend(f)(s);
      throw new Error('killed');
    });
    expect(died.stopped?.reason).toBe('failure');
    const restarted = new StatusOutbox(dir);
    expect(await restarted.flush(forgeStatusSend(f), { isAlreadyAccepted: forgeStatusAccepted(f) })).toMatchObject({ sent: 0, alreadyAccepted: 1, pending: 0 });
    expect(gitea.statuses('acme/fleet')).toHaveLength(1);
  });

  it("the agent's reporter posts to Gitea when FLOTILLA_GITHUB_API is a Gitea /api/v1, on the tenant and the source commit", async () => {
    const config = { tenant: 'linda', githubToken: gitea.token, githubApi: gitea.url, githubRepo: 'acme/fleet' } as AgentConfig;
    const lines: string[] = [];
    const reporter = createStatusReporter(config, new StatusOutbox(join(dir, 'outbox')), (l) => void lines.push(l), { retry: false });
    await reporter.report({ tenantCommit: TENANT_SHA, sourceCommit: SOURCE_SHA, state: 'success', description: 'v2.10.3 up' } as Parameters<typeof reporter.report>[0]);
    expect(gitea.statuses('acme/fleet').map((s) => `${s.context} ${s.state} ${s.sha.slice(0, 4)}`)).toEqual(['flotilla/linda success d4d4', 'flotilla/linda success e5e5']);
    expect(lines).toEqual([]);
  });

  it('the reporter takes the forge from FLOTILLA_FORGE (config.forge) over what the API URL says', async () => {
    // A Gitea behind a path that does not end in /api/v1: only the setting can say it is Gitea.
    const seen: string[] = [];
    const viaProxy: typeof fetch = (input, init) => {
      seen.push(new Headers(init?.headers).get('accept') ?? '');
      return fetch(String(input instanceof Request ? input.url : input).replace('http://git.example/gitea-api', gitea.url), init);
    };
    const base = { tenant: 'linda', githubToken: gitea.token, githubRepo: 'acme/fleet' };
    const lines: string[] = [];
    const asGitea = { ...base, githubApi: 'http://git.example/gitea-api', forge: 'gitea' } as AgentConfig;
    await createStatusReporter(asGitea, new StatusOutbox(join(dir, 'outbox-gitea')), (l) => void lines.push(l), { retry: false, fetch: viaProxy }).report({
      tenantCommit: TENANT_SHA,
      state: 'success',
      description: 'v2.10.3 up',
    } as Parameters<StatusReporter['report']>[0]);
    expect(gitea.statuses('acme/fleet').map((s) => `${s.context} ${s.state}`)).toEqual(['flotilla/linda success']);
    // Gitea's client asks for plain JSON; Octokit (the GitHub forge) for GitHub's media type.
    expect(seen).toEqual(['application/json']);
    expect(lines).toEqual([]);

    seen.length = 0;
    const asGitHub = { ...base, githubApi: gitea.url, forge: 'github' } as AgentConfig;
    await createStatusReporter(asGitHub, new StatusOutbox(join(dir, 'outbox-github')), () => undefined, { retry: false, throttle: false, fetch: viaProxy }).report({
      tenantCommit: SOURCE_SHA,
      state: 'pending',
      description: 'applying',
    } as Parameters<StatusReporter['report']>[0]);
    expect(seen).toEqual([expect.stringContaining('application/vnd.github')]);
  });
});
