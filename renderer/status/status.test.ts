import { describe, expect, it } from 'vitest';
import type { CommitStatus } from '../core/github.js';
import { loadFleetFromFiles } from '../fleet/fleet.js';
import { collectFleetStatus, formatAge, formatStatus, formatStatusJson, type StatusReads } from './status.js';

const FLEET = loadFleetFromFiles(
  new Map([
    [
      'fleet/fleet.yaml',
      'defaults:\n  imageTag: v2.10.3\n  registry: 127.0.0.1:5000/flotilla\n  images: {api: api}\n  domainSuffix: example.net\n',
    ],
    ['fleet/tenants/bnkops.yaml', 'mode: managed\n'],
    ['fleet/tenants/linda.yaml', 'mode: adopted\nimageTag: v2.9.7\n'],
    ['fleet/tenants/marcelle.yaml', 'mode: managed\n'],
    ['fleet/tenants/pia.yaml', 'mode: adopted\npaused: true\n'],
    ['fleet/tenants/soroush.yaml', 'mode: managed\n'],
    ['fleet/tenants/trbh.yaml', 'mode: managed\n'],
  ]),
);

const NOW = new Date('2026-05-22T20:00:00Z');
const sha = (c: string) => c.repeat(40);

/** Reads answered from tables: what the fleet repo and GitHub would say. */
function reads(
  heads: Record<string, string>,
  commits: Record<string, { source: string; imageTag: string }>,
  statuses: Record<string, Omit<CommitStatus, 'id' | 'targetUrl'>>,
): StatusReads {
  return {
    listBranches: async (prefix) =>
      new Map(Object.entries(heads).filter(([b]) => b.startsWith(prefix))),
    readTenantCommit: async (oid) => commits[oid] ?? { source: null },
    latestStatus: async (s, context) => {
      const st = statuses[s];
      return st && st.context === context ? { id: 1, targetUrl: null, ...st } : undefined;
    },
    now: () => NOW,
  };
}

const STATUS_READS = reads(
  {
    'tenants/bnkops': sha('1'),
    'tenants/linda': sha('2'),
    'tenants/marcelle': sha('3'),
    'tenants/pia': sha('4'),
    'tenants/soroush': sha('5'),
    // trbh: never published
  },
  {
    [sha('1')]: { source: sha('a'), imageTag: 'v2.10.3' },
    [sha('2')]: { source: sha('a'), imageTag: 'v2.9.7' },
    [sha('3')]: { source: sha('a'), imageTag: 'v2.10.3' },
    [sha('4')]: { source: sha('9'), imageTag: 'v2.10.2' },
    [sha('5')]: { source: sha('8'), imageTag: 'v2.10.2' },
  },
  {
    [sha('1')]: { state: 'success', context: 'flotilla/bnkops', description: 'v2.10.3 running, 5/5 services healthy', createdAt: '2026-05-22T19:58:00Z' },
    [sha('2')]: { state: 'pending', context: 'flotilla/linda', description: 'compose pull', createdAt: '2026-05-22T19:59:30Z' },
    [sha('3')]: { state: 'failure', context: 'flotilla/marcelle', description: 'api unhealthy after 120s; rolled back', createdAt: '2026-05-22T17:00:00Z' },
    [sha('4')]: { state: 'success', context: 'flotilla/pia', description: 'v2.10.2 running', createdAt: '2026-05-19T20:00:00Z' },
    // soroush's head was published at v2.10.2 and reported success; the fleet now wants v2.10.3.
    [sha('5')]: { state: 'success', context: 'flotilla/soroush', description: 'v2.10.2 running', createdAt: '2026-05-22T12:00:00Z' },
  },
);

describe('collectFleetStatus', () => {
  it('gives each tenant a verdict from the latest status on its branch head', async () => {
    const status = await collectFleetStatus(FLEET, STATUS_READS);
    expect(status.tenants.map((t) => [t.slug, t.verdict])).toEqual([
      ['bnkops', 'converged'],
      ['linda', 'pending'],
      ['marcelle', 'failed'],
      ['pia', 'paused'],
      ['soroush', 'pending'],
      ['trbh', 'never reported'],
    ]);
    expect(status.counts).toEqual({ converged: 1, pending: 2, failed: 1, paused: 1, 'never reported': 1, unknown: 0 });
    expect(status.tenants[2]).toMatchObject({
      desiredTag: 'v2.10.3',
      head: sha('3'),
      source: sha('a'),
      state: 'failure',
      description: 'api unhealthy after 120s; rolled back',
      ageSeconds: 3 * 3600,
    });
  });

  it('shows local changes a host reports as drift, without changing any verdict', async () => {
    const base = STATUS_READS;
    const drifted: StatusReads = {
      ...base,
      latestStatus: async (s, context) =>
        s === sha('1') && context === 'flotilla/bnkops/drift'
          ? { id: 2, targetUrl: null, state: 'failure', context, description: '1 local change: nginx/conf.d/api.conf (modified)', createdAt: '2026-05-22T19:59:00Z' }
          : s === sha('3') && context === 'flotilla/marcelle/drift'
            ? { id: 3, targetUrl: null, state: 'success', context, description: 'no local changes', createdAt: '2026-05-22T19:59:00Z' }
            : base.latestStatus!(s, context),
    };
    const status = await collectFleetStatus(FLEET, drifted);
    const bnkops = status.tenants.find((t) => t.slug === 'bnkops')!;
    expect(bnkops).toMatchObject({ verdict: 'converged', drift: { state: 'failure' } });
    expect(status.counts.converged).toBe(1);
    const text = formatStatus(status, { tty: false });
    expect(text.split('\n')[1]).toBe(`bnkops\tv2.10.3\tv2.10.3\t1111111\taaaaaaa\tconverged\tlocal changes\t2m\tv2.10.3 running, 5/5 services healthy`);
    expect(text.split('\n').find((l) => l.startsWith('marcelle'))).toContain('\tfailed\tnone\t');
    expect(text).toContain('local changes on bnkops: 1 local change: nginx/conf.d/api.conf (modified)\n');
    expect(JSON.parse(formatStatusJson(status)).tenants[0].drift).toEqual({ state: 'failure', description: '1 local change: nginx/conf.d/api.conf (modified)' });
  });

  it('ignores statuses of other contexts on the same commit', async () => {
    const status = await collectFleetStatus(
      FLEET,
      reads({ 'tenants/bnkops': sha('1') }, {}, { [sha('1')]: { state: 'failure', context: 'ci/test', description: null, createdAt: NOW.toISOString() } }),
    );
    expect(status.tenants.find((t) => t.slug === 'bnkops')?.verdict).toBe('never reported');
  });
});

describe('formatStatus', () => {
  it('prints an aligned table and the summary line on a terminal', async () => {
    const text = formatStatus(await collectFleetStatus(FLEET, STATUS_READS), { tty: true });
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^TENANT\s+DESIRED\s+PUBLISHED\s+HEAD\s+SOURCE\s+STATE\s+DRIFT\s+AGE\s+DESCRIPTION$/);
    expect(lines[3]).toMatch(/^marcelle\s+v2\.10\.3\s+v2\.10\.3\s+3333333\s+aaaaaaa\s+failed\s+-\s+3h\s+api unhealthy after 120s; rolled back$/);
    expect(lines[4]).toMatch(/^pia\s+v2\.10\.3\s+v2\.10\.2\s+4444444\s+9999999\s+paused \(success\)\s+-\s+3d\s+v2\.10\.2 running$/);
    expect(lines[6]).toMatch(/^trbh\s+v2\.10\.3\s+-\s+-\s+-\s+never reported\s+-\s+-\s+-$/);
    // Columns line up: every row puts STATE at the same offset.
    const stateAt = lines[0]!.indexOf('STATE');
    expect(lines.slice(1, 7).every((l) => /\S/.test(l[stateAt]!) && l[stateAt - 1] === ' ')).toBe(true);
    expect(text.endsWith('\n1 converged, 2 pending, 1 failed, 1 paused, 1 never reported\n')).toBe(true);
  });

  it('prints tab-separated lines when piped', async () => {
    const text = formatStatus(await collectFleetStatus(FLEET, STATUS_READS), { tty: false });
    expect(text.split('\n')[1]).toBe(`bnkops\tv2.10.3\tv2.10.3\t1111111\taaaaaaa\tconverged\t-\t2m\tv2.10.3 running, 5/5 services healthy`);
  });

  it('gives scripts JSON with the summary counts', async () => {
    const json = JSON.parse(formatStatusJson(await collectFleetStatus(FLEET, STATUS_READS)));
    expect(json.summary.failed).toBe(1);
    expect(json.tenants).toHaveLength(6);
  });

  it('shows ages in the largest whole unit', () => {
    expect([formatAge(undefined), formatAge(59), formatAge(60), formatAge(7200), formatAge(90000)]).toEqual(['-', '59s', '1m', '2h', '1d']);
  });
});
