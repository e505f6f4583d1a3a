// Progressive rollout end to end on the loopback git server and a forge stand-in (GitHub
// and Gitea, the same steps against each):
// the example fleet (waves canary: bnkops; early: marcelle, pia; general: linda,
// soroush; trbh paused), a fleet-wide imageTag bump, agents simulated by posting the
// `flotilla/<slug>` statuses they post on the source commit.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishFleet } from '../../renderer/publish/publish-fleet.js';
import { rolloutStep, type RolloutStepOptions } from '../../renderer/rollout/promote.js';
import { planRepo } from '../../renderer/plan/plan-revisions.js';
import { gitStatusReads } from '../../renderer/status/status-reads.js';
import { loadFleet } from '../../renderer/fleet/fleet.js';
import { collectFleetStatus, formatStatus } from '../../renderer/status/status.js';
import { join } from 'node:path';
import { runCli } from '../../renderer/main.js';
import type { CliIo } from '../../renderer/cli.js';
import { FORGE_KINDS } from '../support/forge-standin.js';
import { REPO, startRolloutFixture, type RolloutFixture } from './harness.js';

let fx: RolloutFixture;
let c0: string;
let c1: string;

const minutes = (n: number) => new Date(Date.now() + n * 60_000);

function promote(now = new Date(), extra: Partial<RolloutStepOptions> = {}) {
  return rolloutStep({
    root: fx.root,
    repoUrl: fx.remote,
    cacheDir: fx.cacheDir,
    forge: { forge: fx.forge, repo: REPO },
    writeForge: true,
    now: () => now,
    ...extra,
  });
}

function rolloutStatuses(sha: string) {
  return fx.standIn.statuses('acme/fleet', sha).filter((s) => s.context === 'flotilla/rollout');
}

describe.each(FORGE_KINDS)('on the %s stand-in', (kind) => {
  beforeEach(async () => {
    fx = await startRolloutFixture(kind);
    // Every tenant runs C0, and every agent said so.
    c0 = await fx.commit('fleet');
    await publishFleet(fx.root, { repoUrl: fx.remote, cacheDir: fx.cacheDir });
    for (const slug of ['bnkops', 'linda', 'marcelle', 'pia', 'soroush']) await fx.report(slug, c0, 'success');
    // The change rolled out: the fleet default moves (linda pins her own tag, so it does not reach her).
    await fx.editFleet((t) => t.replace('imageTag: v2.10.3', 'imageTag: v2.11.0'));
    c1 = await fx.commit('Bump fleet default to v2.11.0');
  });

  afterEach(async () => {
    expect(fx.standIn.violations()).toEqual([]);
    await fx.close();
  });

  describe('flotilla promote', () => {
    it('rolls out wave by wave, advancing only on success and after the soak', async () => {
      let step = await promote();
      expect(step.published).toMatchObject({ wave: 'canary', committed: ['bnkops'] });
      let sources = await fx.branchSources();
      expect(sources.get('bnkops')).toBe(c1);
      for (const slug of ['marcelle', 'pia', 'soroush', 'linda']) expect(sources.get(slug)).toBe(c0);
      expect(sources.get('trbh')).toBeUndefined(); // paused: never published
      expect(step.report.paused).toEqual(['trbh']);
      expect(rolloutStatuses(c1).at(-1)).toMatchObject({ state: 'pending', description: '0/3 waves done; wave canary: waiting for bnkops to report success' });

      // The canary has not reported: nothing moves, and the status is not posted again.
      step = await promote();
      expect(step.published).toBeUndefined();
      expect(step.report.decision).toMatchObject({ kind: 'wait', wave: 'canary' });
      expect(rolloutStatuses(c1)).toHaveLength(1);

      await fx.report('bnkops', c1, 'pending', 'applying v2.11.0');
      expect((await promote()).published).toBeUndefined();
      await fx.report('bnkops', c1, 'success');
      // Success, but the canary soaks 30 minutes.
      step = await promote(minutes(10));
      expect(step.published).toBeUndefined();
      expect(step.report.decision).toMatchObject({ kind: 'wait', wave: 'canary', reason: expect.stringMatching(/soaking until/) });
      expect((await fx.branchSources()).get('pia')).toBe(c0);

      step = await promote(minutes(31));
      expect(step.published).toMatchObject({ wave: 'early', committed: ['marcelle', 'pia'] });
      sources = await fx.branchSources();
      expect([sources.get('marcelle'), sources.get('pia'), sources.get('soroush')]).toEqual([c1, c1, c0]);

      await fx.report('marcelle', c1, 'success');
      expect((await promote(minutes(200))).published).toBeUndefined(); // pia has not reported
      await fx.report('pia', c1, 'success');
      step = await promote(minutes(200));
      // linda's render does not change (she pins her tag): only soroush gets a commit.
      expect(step.published).toMatchObject({ wave: 'general', committed: ['soroush'] });
      expect((await fx.branchSources()).get('linda')).toBe(c0);

      await fx.report('soroush', c1, 'success');
      step = await promote(minutes(300));
      expect(step.report.decision).toEqual({ kind: 'complete' });
      expect(rolloutStatuses(c1).at(-1)).toMatchObject({ state: 'success', description: 'rollout complete: 3/3 waves done' });
      expect(fx.standIn.pulls('acme/fleet')).toEqual([]);
    });

    it('halts on a failure in wave 1: waves 2 and 3 stay on the old commit, one rollback PR, linked from flotilla/rollout', async () => {
      await promote();
      await fx.report('bnkops', c1, 'failure', 'health failed: api unhealthy');

      const step = await promote(minutes(60));
      expect(step.published).toBeUndefined();
      expect(step.report.decision).toMatchObject({ kind: 'halted', wave: 'canary' });
      const sources = await fx.branchSources();
      for (const slug of ['marcelle', 'pia', 'soroush', 'linda']) expect(sources.get(slug)).toBe(c0);

      const [pr, ...more] = fx.standIn.pulls('acme/fleet');
      expect(more).toEqual([]);
      expect(pr).toMatchObject({ head: `rollback/bnkops-${c0.slice(0, 12)}`, base: 'main', title: `Roll back bnkops to ${c0.slice(0, 12)}` });
      expect(pr!.body).toContain('halted (wave canary: bnkops failed (health failed: api unhealthy))');
      const status = rolloutStatuses(c1).at(-1)!;
      expect(status).toMatchObject({ state: 'failure', description: 'halted: wave canary: bnkops failed (health failed: api unhealthy)' });
      expect(status.target_url).toBe(step.rollback!.pullRequest!.url);

      // The rollback PR gives bnkops exactly its C0 render back and touches no one else.
      const restores = await planRepo({ root: fx.root, base: c0, head: `origin/${pr!.head}` });
      expect(restores.tenants.find((t) => t.slug === 'bnkops')?.change).toBe('unchanged');
      const change = await planRepo({ root: fx.root, base: c1, head: `origin/${pr!.head}` });
      expect(change.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug)).toEqual(['bnkops']);

      // `flotilla status` says halted, why, and where the rollback is.
      const fleet = await loadFleet(fx.root);
      const fleetStatus = await collectFleetStatus(fleet, gitStatusReads({ url: fx.remote, gitdir: join(fx.cacheDir, '..', 'status.git'), forge: { forge: fx.forge, repo: REPO } }));
      const text = formatStatus(fleetStatus, { tty: false });
      expect(text).toContain(`rollout of ${c1.slice(0, 12)}: HALTED: wave canary: bnkops failed (health failed: api unhealthy)\n`);
      expect(text).toContain(`  rollback: ${step.rollback!.pullRequest!.url}\n`);

      // Later runs: still halted, no second PR, no second status.
      const again = await promote(minutes(120));
      expect(again.report.decision.kind).toBe('halted');
      expect(again.published).toBeUndefined();
      expect(fx.standIn.pulls('acme/fleet')).toHaveLength(1);
      expect(rolloutStatuses(c1).filter((s) => s.state === 'failure')).toHaveLength(1);
    });

    it('with autoRollback off a halt opens no PR', async () => {
      await promote();
      await fx.report('bnkops', c1, 'error', 'pull failed');
      const step = await promote(minutes(1), { autoRollback: false });
      expect(step.report.decision.kind).toBe('halted');
      expect(fx.standIn.pulls('acme/fleet')).toEqual([]);
      expect(rolloutStatuses(c1).at(-1)).toMatchObject({ state: 'failure', target_url: null });
    });
  });

  // Reads no statuses (no token): the same on every forge.
  describe('flotilla publish on a fleet with waves', () => {
    async function publish(args: string[] = []): Promise<string> {
      let out = '';
      const io: CliIo = { stdout: (t) => void (out += t), stderr: (t) => void (out += t), cwd: fx.root, env: {} };
      expect(await runCli(['publish', '--repo', fx.remote, '--cache', fx.cacheDir, ...args], io)).toBe(0);
      return out;
    }

    it('publishes only the first wave; a rerun without statuses publishes nothing more; --now publishes every tenant', async () => {
      expect(await publish()).toContain('bnkops: committed (wave canary)');
      let sources = await fx.branchSources();
      expect([sources.get('bnkops'), sources.get('pia'), sources.get('soroush')]).toEqual([c1, c0, c0]);

      const rerun = await publish();
      expect(rerun).not.toContain('committed');
      expect(rerun).toContain('wave canary: waiting for bnkops to report success');

      const now = await publish(['--now']);
      expect(now).toMatch(/published to .*: 3 committed, 2 unchanged, paused \(skipped\): trbh/);
      sources = await fx.branchSources();
      expect([sources.get('marcelle'), sources.get('pia'), sources.get('soroush'), sources.get('linda'), sources.get('trbh')]).toEqual([c1, c1, c1, c0, undefined]);
    });
  });
});
