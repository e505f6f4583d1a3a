import { describe, expect, it } from 'vitest';
import { renderedSide } from '../../test/support/rendered-side.js';
import type { Manifest } from '../core/manifest.js';
import { loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import {
  buildPlan,
  envChanges,
  planExitCode,
  taggedImages,
  type RegistryCheck,
  type RenderedSide,
} from './plan.js';

const FLEET_YAML = `defaults:
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
    admin: changemaker-admin
    nginx: nginx:1.27-alpine
  domainSuffix: fleet.example.net
  secrets: [POSTGRES_PASSWORD, JWT_SECRET]
waves:
  - name: canary
    tenants: [bnkops]
  - name: general
    selector:
      ring: general
`;

function fleetOf(tenants: Record<string, string>): Fleet {
  const files = new Map([['fleet/fleet.yaml', FLEET_YAML]]);
  for (const [slug, yaml] of Object.entries(tenants)) files.set(`fleet/tenants/${slug}.yaml`, yaml);
  return loadFleetFromFiles(files);
}

const FLEET = fleetOf({
  bnkops: 'mode: managed\n',
  linda: 'mode: adopted\nhostEnv: [POSTGRES_PASSWORD, JWT_SECRET, SMTP_PASSWORD]\nlabels:\n  ring: general\n',
  pia: 'mode: adopted\npaused: true\nlabels:\n  ring: general\n',
  trbh: 'mode: managed\n',
});

/** Defaults of this file's tenants: an image tag in the env patch, two fleet secrets. */
function side(slug: string, files: Record<string, string>, manifest: Partial<Manifest> = {}, paused = false): RenderedSide {
  return renderedSide(
    slug,
    files,
    {
      envPatch: { IMAGE_TAG: manifest.imageTag ?? 'v2.10.3' },
      requiredVariables: ['IMAGE_TAG', 'POSTGRES_PASSWORD'],
      secrets: ['POSTGRES_PASSWORD', 'JWT_SECRET'],
      ...manifest,
    },
    paused,
  );
}

const COMPOSE = 'services:\n  api:\n    image: ${REGISTRY}/changemaker-api:${IMAGE_TAG}\n';

describe('buildPlan', () => {
  it('lists every file of a changed tenant as unchanged, modified, created or deleted with sizes', async () => {
    const report = await buildPlan({
      fleet: FLEET,
      base: [side('bnkops', { 'docker-compose.yml': COMPOSE, 'nginx/nginx.conf': 'a\n', 'old.conf': 'x\n' })],
      head: [side('bnkops', { 'docker-compose.yml': COMPOSE, 'nginx/nginx.conf': 'a\nb\n', 'new.conf': 'yy\n' })],
    });
    const [bnkops] = report.tenants;
    expect(bnkops?.change).toBe('changed');
    expect(bnkops?.files.map((f) => [f.path, f.status, f.sizeBefore, f.sizeAfter])).toEqual([
      ['docker-compose.yml', 'unchanged', COMPOSE.length, COMPOSE.length],
      ['new.conf', 'created', undefined, 3],
      ['nginx/nginx.conf', 'modified', 2, 4],
      ['old.conf', 'deleted', 2, undefined],
    ]);
    expect(bnkops?.files.find((f) => f.path === 'nginx/nginx.conf')?.diff).toContain('+b');
    expect(report.blastRadius).toMatchObject({ tenantsTotal: 1, tenantsChanged: 1, filesChanged: 3 });
  });

  it('shows env patch changes but never the value of a key named as a secret', async () => {
    const report = await buildPlan({
      fleet: FLEET,
      base: [side('trbh', {}, { envPatch: { LOG_LEVEL: 'info', JWT_SECRET: 'old-secret-value' } })],
      head: [side('trbh', {}, { envPatch: { LOG_LEVEL: 'debug', SMTP_HOST: 'mail', JWT_SECRET: 'new-secret-value' } })],
    });
    expect(report.tenants[0]?.env).toEqual([
      { key: 'JWT_SECRET', status: 'changed', secret: true },
      { key: 'LOG_LEVEL', status: 'changed', before: 'info', after: 'debug', secret: false },
      { key: 'SMTP_HOST', status: 'added', after: 'mail', secret: false },
    ]);
    expect(JSON.stringify(report)).not.toMatch(/secret-value/);
  });

  it('shows changed maintenance windows, hooks and generated secrets, which live only in the manifest', async () => {
    const files = { 'docker-compose.yml': COMPOSE };
    const migrate = { name: 'migrate', run: ['compose', 'exec', '-T', 'api', 'npm', 'run', 'migrate'], timeoutSeconds: 600 };
    const report = await buildPlan({
      fleet: FLEET,
      base: [side('trbh', files, { windows: ['Sun 02:00-05:00 UTC'] }), side('bnkops', files)],
      head: [
        side('trbh', files, { hooks: { postUp: [migrate] }, secrets: ['JWT_SECRET', 'POSTGRES_PASSWORD', 'SMTP_PASSWORD'] }),
        side('bnkops', files),
      ],
    });
    const trbh = report.tenants.find((t) => t.slug === 'trbh')!;
    expect(trbh.change).toBe('changed');
    expect(trbh.files.every((f) => f.status === 'unchanged')).toBe(true);
    expect(trbh.hostSettings).toEqual([
      { setting: 'maintenance windows', before: ['Sun 02:00-05:00 UTC'], after: [] },
      { setting: 'post-up hooks', before: [], after: ['migrate: compose exec -T api npm run migrate (timeout 600 s)'] },
      { setting: 'secrets generated on the host', before: ['JWT_SECRET', 'POSTGRES_PASSWORD'], after: ['JWT_SECRET', 'POSTGRES_PASSWORD', 'SMTP_PASSWORD'] },
    ]);
    expect(report.tenants.find((t) => t.slug === 'bnkops')).toMatchObject({ change: 'unchanged', hostSettings: [] });
    expect(report.blastRadius).toMatchObject({ tenantsChanged: 1, filesChanged: 0 });
  });

  it('warns about required variables nothing defines, counting secrets and hostEnv as defined', async () => {
    const required = ['IMAGE_TAG', 'POSTGRES_PASSWORD', 'SMTP_PASSWORD', 'S3_BUCKET'];
    const report = await buildPlan({
      fleet: FLEET,
      base: [side('linda', {}, { requiredVariables: ['IMAGE_TAG', 'S3_BUCKET'] }), side('trbh', {})],
      head: [side('linda', {}, { requiredVariables: required }), side('trbh', {}, { requiredVariables: required })],
    });
    const linda = report.tenants.find((t) => t.slug === 'linda');
    const trbh = report.tenants.find((t) => t.slug === 'trbh');
    // linda's host is known to hold SMTP_PASSWORD (hostEnv); trbh's is not.
    expect(linda?.envCoverage.missing).toEqual(['S3_BUCKET']);
    expect(linda?.envCoverage.newlyMissing).toEqual([]);
    expect(trbh?.envCoverage.missing).toEqual(['S3_BUCKET', 'SMTP_PASSWORD']);
    expect(trbh?.envCoverage.newlyMissing).toEqual(['S3_BUCKET', 'SMTP_PASSWORD']);
  });

  it('reports the blast radius by rollout wave, with paused and unchanged tenants apart', async () => {
    const before = { 'a.conf': '1\n' };
    const after = { 'a.conf': '2\n' };
    const report = await buildPlan({
      fleet: FLEET,
      base: [side('bnkops', before), side('linda', before), side('pia', before, {}, true), side('trbh', before)],
      head: [side('bnkops', after), side('linda', after), side('pia', after, {}, true), side('trbh', before)],
    });
    expect(report.blastRadius).toEqual({
      tenantsTotal: 4,
      tenantsChanged: 3,
      filesChanged: 3,
      waves: [
        { wave: 'canary', tenants: ['bnkops'] },
        { wave: 'general', tenants: ['linda', 'pia'] },
      ],
      pausedChanged: ['pia'],
      paused: ['pia'],
    });
    expect(report.tenants.find((t) => t.slug === 'trbh')?.change).toBe('unchanged');
  });

  it('puts tenants no wave names in a wave of their own, last', async () => {
    const report = await buildPlan({
      fleet: FLEET,
      base: [],
      head: [side('trbh', { 'a.conf': '1\n' }), side('bnkops', { 'a.conf': '1\n' })],
    });
    expect(report.blastRadius.waves).toEqual([
      { wave: 'canary', tenants: ['bnkops'] },
      { wave: null, tenants: ['trbh'] },
    ]);
    expect(report.tenants.map((t) => t.change)).toEqual(['added', 'added']);
  });

  it('checks each image that follows IMAGE_TAG once per new tag, and fails the plan on a missing tag', async () => {
    const asked: string[] = [];
    const registryCheck: RegistryCheck = async (image, tag) => {
      asked.push(`${image}:${tag}`);
      return image.endsWith('changemaker-admin') && tag === 'v2.11.0' ? 'missing' : 'present';
    };
    const report = await buildPlan({
      fleet: FLEET,
      registryCheck,
      base: [side('bnkops', {}), side('linda', {}, { imageTag: 'v2.9.7' }), side('trbh', {})],
      head: [side('bnkops', {}, { imageTag: 'v2.11.0' }), side('linda', {}, { imageTag: 'v2.11.0' }), side('trbh', {})],
    });
    expect(asked.sort()).toEqual([
      '127.0.0.1:5000/flotilla/changemaker-admin:v2.11.0',
      '127.0.0.1:5000/flotilla/changemaker-api:v2.11.0',
    ]);
    expect(report.tagChecks.find((c) => c.result === 'missing')).toEqual({
      image: '127.0.0.1:5000/flotilla/changemaker-admin',
      tag: 'v2.11.0',
      result: 'missing',
      tenants: ['bnkops', 'linda'],
    });
    expect(report.ok).toBe(false);
    expect(planExitCode(report)).toBe(1);
  });

  it('treats a registry that cannot be asked as a failed check, not as present', async () => {
    const report = await buildPlan({
      fleet: FLEET,
      registryCheck: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:5000');
      },
      base: [side('bnkops', {})],
      head: [side('bnkops', {}, { imageTag: 'v2.11.0' })],
    });
    expect(report.tagChecks.map((c) => c.result)).toEqual(['error', 'error']);
    expect(report.tagChecks[0]?.error).toContain('ECONNREFUSED');
    expect(report.ok).toBe(false);
  });

  it('ignores the manifest, which only names a different source commit', async () => {
    const render = (commit: string, body: string): RenderedSide => {
      const s = side('trbh', { 'a.conf': body, '.flotilla/manifest.json': `{"source":"${commit}"}` });
      s.manifest.source.commit = commit;
      return s;
    };
    const same = await buildPlan({ fleet: FLEET, base: [render('1'.repeat(40), 'x\n')], head: [render('2'.repeat(40), 'x\n')] });
    expect(same.tenants[0]?.change).toBe('unchanged');
    expect(same.tenants[0]?.files.map((f) => f.path)).toEqual(['a.conf']);
    const changed = await buildPlan({ fleet: FLEET, base: [render('1'.repeat(40), 'x\n')], head: [render('2'.repeat(40), 'y\n')] });
    expect(changed.tenants[0]?.files.map((f) => f.status)).toEqual(['modified']);
  });

  it('asks the registry nothing when no tag moves', async () => {
    let asked = 0;
    const report = await buildPlan({
      fleet: FLEET,
      registryCheck: async () => {
        asked++;
        return 'present';
      },
      base: [side('bnkops', { a: '1' })],
      head: [side('bnkops', { a: '2' })],
    });
    expect(asked).toBe(0);
    expect(report.ok).toBe(true);
  });
});

describe('envChanges', () => {
  it('lists nothing when the patch is the same', () => {
    expect(envChanges({ A: '1' }, { A: '1' }, new Set())).toEqual([]);
  });
  it('hides the value of a removed secret', () => {
    expect(envChanges({ TOKEN: 'x' }, {}, new Set(['TOKEN']))).toEqual([{ key: 'TOKEN', status: 'removed', secret: true }]);
  });
});

describe('taggedImages', () => {
  it('leaves out images pinned to their own tag', () => {
    expect(taggedImages(FLEET)).toEqual(['127.0.0.1:5000/flotilla/changemaker-admin', '127.0.0.1:5000/flotilla/changemaker-api']);
  });
});
