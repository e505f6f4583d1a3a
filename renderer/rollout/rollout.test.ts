import { describe, expect, it } from 'vitest';
import type { Wave } from '../fleet/fleet.js';
import { decideRollout, effectiveWaves, formatRollout, rolloutStatus, type TenantRolloutInput } from './rollout.js';

const SOURCE = 'a'.repeat(40);
const OLD = 'b'.repeat(40);
const NOW = new Date('2025-06-08T12:00:00Z');
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();

const WAVES: Wave[] = [
  { name: 'canary', tenants: ['bnkops'], soakMinutes: 30 },
  { name: 'early', tenants: ['pia', 'soroush'], maxFailures: 1 },
  { name: 'general', tenants: ['linda', 'marcelle'] },
];

function tenant(slug: string, over: Partial<TenantRolloutInput> = {}): TenantRolloutInput {
  return { slug, paused: false, behind: true, branchSource: OLD, ...over };
}
const ok = (minutes = 60): Partial<TenantRolloutInput> => ({ behind: false, branchSource: SOURCE, status: { state: 'success', at: minutesAgo(minutes) } });
const failed = (description = 'health failed: api unhealthy'): Partial<TenantRolloutInput> => ({
  behind: false,
  branchSource: SOURCE,
  status: { state: 'failure', at: minutesAgo(5), description },
});

function decide(tenants: TenantRolloutInput[]) {
  return decideRollout({ waves: WAVES, tenants, source: SOURCE, now: NOW });
}

describe('decideRollout', () => {
  it('publishes the first wave of a new source commit, and only it', () => {
    const r = decide(['bnkops', 'pia', 'soroush', 'linda', 'marcelle'].map((s) => tenant(s)));
    expect(r.decision).toEqual({ kind: 'publish', wave: 'canary', tenants: ['bnkops'] });
    expect(r.waves.map((w) => w.state)).toEqual(['next', 'waiting', 'waiting']);
    expect(r.waves[2]!.behind).toEqual(['linda', 'marcelle']);
  });

  it('waits while a published wave has not reported success', () => {
    const r = decide([tenant('bnkops', { behind: false, branchSource: SOURCE, status: { state: 'pending', at: minutesAgo(1) } }), tenant('pia')]);
    expect(r.decision).toMatchObject({ kind: 'wait', wave: 'canary', reason: 'wave canary: waiting for bnkops to report success' });
    // No status at all is the same: the agent has not picked the commit up.
    expect(decide([tenant('bnkops', { behind: false, branchSource: SOURCE }), tenant('pia')]).decision.kind).toBe('wait');
  });

  it('soaks after success, then publishes the next wave', () => {
    const soaking = decide([tenant('bnkops', ok(10)), tenant('pia'), tenant('soroush')]);
    expect(soaking.decision).toEqual({
      kind: 'wait',
      wave: 'canary',
      reason: 'wave canary: soaking until 2025-06-08T12:20Z',
      until: new Date('2025-06-08T12:20:00Z'),
    });
    const soaked = decide([tenant('bnkops', ok(31)), tenant('pia'), tenant('soroush')]);
    expect(soaked.decision).toEqual({ kind: 'publish', wave: 'early', tenants: ['pia', 'soroush'] });
    expect(soaked.waves[0]!.state).toBe('done');
  });

  it('halts on a failure in a wave with no failures allowed, naming the tenant and why', () => {
    const r = decide([tenant('bnkops', failed()), tenant('pia'), tenant('linda')]);
    expect(r.decision).toEqual({
      kind: 'halted',
      wave: 'canary',
      failed: [{ slug: 'bnkops', description: 'health failed: api unhealthy' }],
      reason: 'wave canary: bnkops failed (health failed: api unhealthy)',
    });
    expect(rolloutStatus(r)).toEqual({ state: 'failure', description: 'halted: wave canary: bnkops failed (health failed: api unhealthy)' });
  });

  it('tolerates up to maxFailures, and halts beyond', () => {
    const one = decide([tenant('bnkops', ok()), tenant('pia', failed()), tenant('soroush', ok()), tenant('linda')]);
    expect(one.decision).toEqual({ kind: 'publish', wave: 'general', tenants: ['linda'] });
    const two = decide([tenant('bnkops', ok()), tenant('pia', failed()), tenant('soroush', failed('pull failed')), tenant('linda')]);
    expect(two.decision).toMatchObject({ kind: 'halted', wave: 'early' });
    expect((two.decision as { reason: string }).reason).toMatch(/more than maxFailures 1$/);
  });

  it('a failure in an earlier wave halts even after later waves were published', () => {
    const r = decide([tenant('bnkops', failed()), tenant('pia', ok()), tenant('soroush', ok())]);
    expect(r.decision).toMatchObject({ kind: 'halted', wave: 'canary' });
  });

  it('a tenant the change does not touch counts by the status of the commit its branch names', () => {
    // bnkops' render did not change: its branch still names OLD, where it succeeded long ago.
    const untouched = decide([tenant('bnkops', { behind: false, branchSource: OLD, status: { state: 'success', at: minutesAgo(600) } }), tenant('pia')]);
    expect(untouched.decision).toEqual({ kind: 'publish', wave: 'early', tenants: ['pia'] });
    // ...but a failure there is still a failure: a halt is not lost by the next unrelated merge.
    const stillBroken = decide([tenant('bnkops', { behind: false, branchSource: OLD, status: { state: 'failure', at: minutesAgo(600) } }), tenant('pia')]);
    expect(stillBroken.decision.kind).toBe('halted');
  });

  it('never publishes a paused tenant, and lists it', () => {
    const r = decide([tenant('bnkops', ok()), tenant('pia', { paused: true }), tenant('soroush', { paused: true }), tenant('linda', ok()), tenant('marcelle', ok())]);
    expect(r.decision).toEqual({ kind: 'complete' });
    expect(r.paused).toEqual(['pia', 'soroush']);
    expect(r.waves[1]!.tenants).toEqual([]);
    expect(rolloutStatus(r)).toEqual({ state: 'success', description: 'rollout complete: 3/3 waves done' });
    expect(formatRollout(r)).toContain('paused (never published): pia, soroush');
  });
});

describe('effectiveWaves', () => {
  it('puts tenants no wave names in a last wave, and a tenant only in the first wave naming it', () => {
    const waves = effectiveWaves({
      waves: [
        { name: 'a', tenants: ['x'] },
        { name: 'b', tenants: ['x', 'y'] },
      ],
      tenants: ['x', 'y', 'z'].map((slug) => ({ slug }) as never),
    });
    expect(waves.map((w) => [w.name, w.tenants])).toEqual([
      ['a', ['x']],
      ['b', ['y']],
      ['unassigned', ['z']],
    ]);
  });

  it('makes a fleet without waves one wave of every tenant', () => {
    const waves = effectiveWaves({ waves: [], tenants: ['x', 'y'].map((slug) => ({ slug }) as never) });
    expect(waves).toEqual([{ name: 'all', tenants: ['x', 'y'] }]);
  });
});
