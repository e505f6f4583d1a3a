// kill -9 of the agent's node process alone while its `compose up` runs, on the real
// engine (private dockerd and registry, Debian's docker-compose, the loopback git
// server). Cron, a manual run or a supervisor other than systemd does not kill the
// process group, so the `up` lives on. The restarted agent must wait for it (or stop it)
// before it recovers: its own `up` never overlaps the leftover one, and the host ends on
// exactly one good commit, applied, with the stack healthy.
//
// FLOTILLA_COMPOSE is a small wrapper around docker-compose that logs when each `up`
// starts and ends (by PID) and starts it 3 s late, so the kill lands inside it.
import { spawn } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { remoteBranchHead } from '../../renderer/core/git.js';
import { publishTenants } from '../../renderer/publish/publish.js';
import { createComposeRunner } from '../../agent/compose.js';
import { journalPath } from '../../agent/journal.js';
import { runAgentCli } from '../../agent/main.js';
import { readState } from '../../agent/state.js';
import { agentSettings } from '../support/agent-settings.js';
import { startGitServer, type GitServer } from '../support/git-server.js';
import { docker } from '../support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO, tenantFixture, type TenantFixture } from '../support/tenant-fixture.js';

const ctx = inject('docker');
const dockerClient = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const REPO_ROOT = join(import.meta.dirname, '..', '..');
const TENANT = 'killedup';

let git: GitServer;
let work: string;
let repoUrl: string;
let installDir: string;
let stateDir: string;
let upLog: string;
let env: Record<string, string>;
const releases = new Map<string, { tag: string; fixture: TenantFixture }>();

const exists = (path: string) => access(path).then(() => true, () => false);

let count = 0;
async function publish(tag: 'v1' | 'v2'): Promise<string> {
  const sourceCommit = fakeSourceCommit(`kill mid-up ${++count}`);
  const fixture = tenantFixture({ tenant: TENANT, imageTag: tag, registry: ctx.registry, repository: 'flotilla-test/app', sourceCommit, configText: `release ${count}\n` });
  await publishTenants({
    repoUrl,
    workDir: join(work, 'publish.git'),
    tenants: [{ slug: TENANT, files: fixture.files }],
    source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
  });
  const commit = (await remoteBranchHead(repoUrl, `tenants/${TENANT}`))!;
  releases.set(commit, { tag, fixture });
  return commit;
}

async function onceInProcess(): Promise<{ code: number; log: string }> {
  const lines: string[] = [];
  const code = await runAgentCli(['once'], { env, stdout: (s) => void lines.push(s), stderr: (s) => void lines.push(s) });
  return { code, log: lines.join('') };
}

/** Each `up` the wrapper ran: its PID, start and end (seconds; end undefined while it runs). */
async function ups(): Promise<Array<{ pid: string; start: number; end?: number }>> {
  const text = await readFile(upLog, 'utf8').catch(() => '');
  const byPid = new Map<string, { pid: string; start: number; end?: number }>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [what, pid, at] = line.split(' ') as [string, string, string];
    if (what === 'start') byPid.set(pid, { pid, start: Number(at) });
    else byPid.get(pid)!.end = Number(at);
  }
  return [...byPid.values()].sort((a, b) => a.start - b.start);
}

async function runningApps(): Promise<Array<{ version: string; health: string }>> {
  const ids = (await docker(['ps', '--quiet', '--filter', `label=com.docker.compose.project=${TENANT}`], dockerClient)).split(/\s+/).filter(Boolean);
  return Promise.all(
    ids.map(async (id) => ({
      version: (await docker(['exec', id, 'cat', '/VERSION'], dockerClient)).trim(),
      health: (await docker(['inspect', '--format', '{{.State.Health.Status}}', id], dockerClient)).trim(),
    })),
  );
}

beforeAll(async () => {
  work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'kill-mid-up-'));
  installDir = join(work, 'install');
  stateDir = join(work, 'state');
  upLog = join(work, 'ups.log');
  await mkdir(installDir);
  const wrapper = join(work, 'compose-logging-ups');
  await writeFile(
    wrapper,
    [
      '#!/bin/sh',
      'for a in "$@"; do [ "$a" = up ] && is_up=1; done',
      '[ -z "$is_up" ] && exec docker-compose "$@"',
      `echo "start $$ $(date +%s.%N)" >> ${upLog}`,
      'sleep 3',
      'docker-compose "$@"',
      'rc=$?',
      `echo "end $$ $(date +%s.%N)" >> ${upLog}`,
      'exit $rc',
      '',
    ].join('\n'),
  );
  await chmod(wrapper, 0o755);
  git = await startGitServer();
  await git.createBareRepo('fleet.git');
  repoUrl = git.url('fleet.git');
  env = agentSettings(ctx, { repoUrl, tenant: TENANT, installDir, stateDir, compose: wrapper });
  const v1 = await publish('v1');
  const applied = await onceInProcess();
  expect(applied.code, applied.log).toBe(0);
  expect((await readState(stateDir)).lastApplied?.commit).toBe(v1);
});

afterAll(async () => {
  const compose = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  if (await exists(join(installDir, 'docker-compose.yml'))) await compose.down({ dir: installDir, project: TENANT }).catch(() => undefined);
  await git?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('kill -9 of the agent alone during compose up', () => {
  it('the restart waits for the leftover up, then recovers to exactly one good commit', async () => {
    const v2 = await publish('v2');
    const upsBefore = (await ups()).length;

    // The real CLI; killed by PID once its `up` has started. Its children are not.
    const agent = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', 'once'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    agent.stdout.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const closed = new Promise<string | null>((resolve) => agent.on('close', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 60_000;
    while ((await ups()).length === upsBefore) {
      if (Date.now() > deadline || agent.exitCode !== null) throw new Error(`the agent never reached up:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(agent.pid!, 'SIGKILL');
    expect(await closed, output).toBe('SIGKILL');
    const leftover = (await ups()).at(-1)!;
    expect(leftover.end).toBeUndefined();

    const restarted = await onceInProcess();

    expect(restarted.code, restarted.log).toBe(0);
    expect(restarted.log).toMatch(/recover: waiting for \d+ process\(es\) of the interrupted run: .*compose-logging-ups/);
    expect(restarted.log).not.toMatch(/recovery failed|rolled back/);
    // The leftover `up` ended before the recovery's own began: they never ran together.
    const after = (await ups()).slice(upsBefore);
    expect(after.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < after.length; i++) expect(after[i]!.start).toBeGreaterThanOrEqual(after[i - 1]!.end!);
    expect(after.every((u) => u.end !== undefined)).toBe(true);

    const state = await readState(stateDir);
    expect(state.lastApplied?.commit).toBe(v2);
    expect(state.lastAttempt).toMatchObject({ commit: v2, outcome: 'applied' });
    expect(await runningApps()).toEqual([{ version: 'v2', health: 'healthy' }]);
    expect(await readFile(join(installDir, 'config/app.conf'), 'utf8')).toBe(`release ${count}\n`);
    expect(await exists(journalPath(stateDir))).toBe(false);
    expect((await onceInProcess()).log).toMatch(/outcome: noop/);
  });
});
