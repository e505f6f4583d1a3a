// `flotilla comment` against the OpenAPI-checked GitHub and Gitea stand-ins (the forge is
// detected from the API URL: Gitea's ends in /api/v1).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FORGE_KINDS, startForgeStandIn, type ForgeStandIn } from '../../test/support/forge-standin.js';
import type { CliIo } from '../cli.js';
import { PLAN_COMMENT_MARKER } from '../plan/plan-markdown.js';
import { registerComment } from './comment.js';

const TOKEN = 'ghs_comment_test_token_0123456789abcdef';
const MAIN = 'a'.repeat(40);
const HEAD = 'b'.repeat(40);

describe.each(FORGE_KINDS)('flotilla comment (%s stand-in)', (kind) => {
  let standIn: ForgeStandIn;
  let dir: string;

  beforeEach(async () => {
    standIn = await startForgeStandIn(kind, { token: TOKEN, repos: ['acme/fleet'] });
    standIn.setRef('acme/fleet', 'main', MAIN);
    standIn.setRef('acme/fleet', 'bump/linda-v2', HEAD);
    const res = await api('POST', '/repos/acme/fleet/pulls', { title: 'Bump linda', head: 'bump/linda-v2', base: 'main' });
    expect(res.status).toBe(201);
    dir = await mkdtemp(join(tmpdir(), 'flotilla-comment-'));
  });
  afterEach(async () => {
    expect(standIn.violations()).toEqual([]);
    await standIn.close();
    await rm(dir, { recursive: true, force: true });
  });

  function api(method: string, path: string, body?: object) {
    return fetch(`${standIn.url}${path}`, {
      method,
      headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/json', accept: 'application/vnd.github+json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  }

  function cli(env: Record<string, string> = {}) {
    const out: string[] = [];
    const io: CliIo = {
      stdout: (s) => out.push(s),
      stderr: (s) => out.push(s),
      cwd: dir,
      env: { GITHUB_TOKEN: TOKEN, GITHUB_API_URL: standIn.url, GITHUB_REPOSITORY: 'acme/fleet', ...env },
    };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerComment(program, io);
    return { run: (args: string[]) => program.parseAsync(args, { from: 'user' }), out };
  }

  it('creates one comment, then updates that same comment on the next push', async () => {
    await api('POST', '/repos/acme/fleet/issues/1/comments', { body: 'LGTM from a human' });
    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nfirst plan\n`);
    const first = cli();
    await first.run(['comment', '--pr', '1', '--file', 'plan.md']);
    expect(first.out.join('')).toMatch(/^created plan comment \d+ on acme\/fleet#1: /);

    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nsecond plan\n`);
    const second = cli();
    await second.run(['comment', '--pr', '1', '--file', 'plan.md']);
    expect(second.out.join('')).toMatch(/^updated plan comment \d+/);

    const comments = standIn.comments('acme/fleet', 1);
    expect(comments.map((c) => c.body)).toEqual(['LGTM from a human', `${PLAN_COMMENT_MARKER}\nsecond plan\n`]);
  });

  it('leaves an identical comment alone', async () => {
    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nsame\n`);
    await cli().run(['comment', '--pr', '1', '--file', 'plan.md']);
    const again = cli();
    await again.run(['comment', '--pr', '1', '--file', 'plan.md']);
    expect(again.out.join('')).toMatch(/^unchanged plan comment/);
    expect(standIn.requests().filter((r) => r.method === 'PATCH')).toEqual([]);
  });

  it('finds its comment past the first page of a long discussion', async () => {
    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nv1\n`);
    await cli().run(['comment', '--pr', '1', '--file', 'plan.md']);
    for (let i = 0; i < 120; i++) await api('POST', '/repos/acme/fleet/issues/1/comments', { body: `comment ${i}` });
    // Newest first would put it on page 2 either way; the stand-in pages oldest first like GitHub.
    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nv2\n`);
    await cli().run(['comment', '--pr', '1', '--file', 'plan.md']);
    const sticky = standIn.comments('acme/fleet', 1).filter((c) => c.body.includes(PLAN_COMMENT_MARKER));
    expect(sticky.map((c) => c.body)).toEqual([`${PLAN_COMMENT_MARKER}\nv2\n`]);
  });

  it('adds the marker to a body that lacks it, so the next run still finds it', async () => {
    await writeFile(join(dir, 'plan.md'), 'hand-written plan\n');
    await cli().run(['comment', '--pr', '1', '--file', 'plan.md']);
    await cli().run(['comment', '--pr', '1', '--file', 'plan.md']);
    expect(standIn.comments('acme/fleet', 1).map((c) => c.body)).toEqual([`${PLAN_COMMENT_MARKER}\nhand-written plan\n`]);
  });

  it('also appends the plan to $GITHUB_STEP_SUMMARY', async () => {
    const summary = join(dir, 'summary.md');
    await writeFile(summary, '# earlier step\n');
    await writeFile(join(dir, 'plan.md'), `${PLAN_COMMENT_MARKER}\nthe plan\n`);
    await cli({ GITHUB_STEP_SUMMARY: summary }).run(['comment', '--pr', '1', '--file', 'plan.md']);
    expect(await readFile(summary, 'utf8')).toBe(`# earlier step\n${PLAN_COMMENT_MARKER}\nthe plan\n`);
  });

  it('plans the checkout itself when no --file is given', async () => {
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' });
    const files: Record<string, string> = {
      'fleet/fleet.yaml':
        'defaults:\n  imageTag: v1\n  registry: 127.0.0.1:9/flotilla\n  images: {api: api}\n  domainSuffix: example.net\n',
      'fleet/tenants/linda.yaml': 'mode: managed\n',
      'templates/app.conf.hbs': 'tag={{imageTag}}\n',
    };
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'fleet');
    await writeFile(join(dir, 'fleet/tenants/linda.yaml'), 'mode: managed\nimageTag: v2\n');
    await cli().run(['comment', '--pr', '1', '--base', 'main', '--no-registry-check']);
    const [comment] = standIn.comments('acme/fleet', 1);
    expect(comment?.body.startsWith(PLAN_COMMENT_MARKER)).toBe(true);
    expect(comment?.body).toContain('#### `linda` · `v1` → `v2`');
  });

  it('needs a token and never prints it', async () => {
    await writeFile(join(dir, 'plan.md'), 'x\n');
    const { run } = cli({ GITHUB_TOKEN: '' });
    await expect(run(['comment', '--pr', '1', '--file', 'plan.md'])).rejects.toThrow(/FLOTILLA_GITHUB_TOKEN: not set/);
    const wrong = cli({ GITHUB_TOKEN: 'ghs_wrong_token_aaaaaaaaaaaaaaaaaaaaaaaa' });
    const err = await wrong.run(['comment', '--pr', '1', '--file', 'plan.md']).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/HTTP 401/);
    expect((err as Error).message).not.toContain('ghs_wrong_token');
  });
});
