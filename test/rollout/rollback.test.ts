// `flotilla rollback` through its CLI command against the loopback git server and a
// forge stand-in (GitHub and Gitea): the PR's plan gives the named tenant exactly its earlier render
// back, even when the change was a fleet default, and touches no other tenant.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import { registerRollback } from '../../renderer/commands/rollback.js';
import { planRepo } from '../../renderer/plan/plan-revisions.js';
import type { CliIo } from '../../renderer/cli.js';
import { FORGE_KINDS } from '../support/forge-standin.js';
import { TOKEN, startRolloutFixture, type RolloutFixture } from './harness.js';

let fx: RolloutFixture;
let c0: string;
let c1: string;

describe.each(FORGE_KINDS)('on the %s stand-in', (kind) => {
  beforeEach(async () => {
    fx = await startRolloutFixture(kind);
    c0 = await fx.commit('fleet');
    // One change that reaches linda three ways: her own file, a fleet env default, a fleet feature default.
    await fx.editTenant('linda', (t) => t.replace('imageTag: v2.9.7', 'imageTag: v2.11.0'));
    await fx.editFleet((t) => t.replace('TZ: America/Edmonton', 'TZ: UTC').replace('publicSignup: false', 'publicSignup: true'));
    c1 = await fx.commit('linda to v2.11.0, UTC, public signup');
  });

  afterEach(async () => {
    expect(fx.standIn.violations()).toEqual([]);
    await fx.close();
  });

  async function rollback(args: string[]): Promise<string> {
    let out = '';
    const io: CliIo = { stdout: (s) => void (out += s), stderr: (s) => void (out += s), cwd: fx.root, env: { GITHUB_TOKEN: TOKEN, GITHUB_API_URL: fx.standIn.url } };
    const program = new Command('flotilla').option('--root <dir>', '', '.').exitOverride();
    registerRollback(program, io);
    await program.parseAsync(args, { from: 'user' });
    return out;
  }

  describe('flotilla rollback', () => {
    it("opens a PR whose plan restores exactly linda's previous render and nothing else", async () => {
      const out = await rollback(['rollback', 'linda', '--open-pr', '--repo', 'acme/fleet']);
      const branch = `rollback/linda-${c0.slice(0, 12)}`;
      expect(out).toContain(`on ${branch} and pushed it to origin`);
      expect(out).toContain('linda: pinned env.TZ: America/Edmonton');
      expect(out).toContain('linda: pinned features.publicSignup: false');
      expect(out).toMatch(/opened pull request #1: http/);

      const [pr] = fx.standIn.pulls('acme/fleet');
      expect(pr).toMatchObject({ head: branch, base: 'main', title: `Roll back linda to ${c0.slice(0, 12)}` });
      expect(pr!.body).toContain(`<!-- flotilla-rollback to=${c0} tenants=linda -->`);
      expect(pr!.body).not.toContain('Not an exact rollback');

      // Only linda's file changed on the branch; fleet.yaml keeps the new defaults for everyone else.
      const changed = execFileSync('git', ['--git-dir', fx.bare, 'diff', '--name-only', c1, branch], { encoding: 'utf8' }).trim();
      expect(changed).toBe('fleet/tenants/linda.yaml');
      const back = await planRepo({ root: fx.root, base: c0, head: `origin/${branch}` });
      expect(back.tenants.find((t) => t.slug === 'linda')?.change).toBe('unchanged');
      const forward = await planRepo({ root: fx.root, base: c1, head: `origin/${branch}` });
      expect(forward.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug)).toEqual(['linda']);

      // A second run finds the branch and the PR: never two.
      const again = await rollback(['rollback', 'linda', '--open-pr', '--repo', 'acme/fleet']);
      expect(again).toContain('already on origin');
      expect(again).toContain('pull request already exists #1');
      expect(fx.standIn.pulls('acme/fleet')).toHaveLength(1);
    });

    it('--to names the commit to go back to; a tenant that did not exist then is refused', async () => {
      const out = await rollback(['rollback', 'pia', '--to', c0]);
      expect(out).toContain(`rollback/pia-${c0.slice(0, 12)}`);
      await fx.editTenant('newbie', () => 'mode: managed\n');
      await fx.commit('add newbie');
      await expect(rollback(['rollback', 'newbie', '--to', c1])).rejects.toThrow(/newbie did not exist at that commit/);
    });
  });
});
