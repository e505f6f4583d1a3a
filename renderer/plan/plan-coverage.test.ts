// The PR's env coverage is compose's own answer for the values the PR knows: the env
// patch, and the keys the fleet says the host holds (secrets, hostEnv) taken as set.
import { describe, expect, it } from 'vitest';
import { renderedSide } from '../../test/support/rendered-side.js';
import type { Manifest } from '../core/manifest.js';
import { loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import { buildPlan } from './plan.js';
import { renderPlanMarkdown } from './plan-markdown.js';

const FLEET_YAML = `defaults:
  imageTag: v15.1.0
  registry: 127.0.0.1:5000/flotilla
  images:
    api: erpnext
  domainSuffix: fleet.example.net
`;

function fleet(tenantYaml: string): Fleet {
  return loadFleetFromFiles(
    new Map([
      ['fleet/fleet.yaml', FLEET_YAML],
      ['fleet/tenants/erp.yaml', tenantYaml],
    ]),
  );
}

// Lines from frappe_docker (pwd.yml) and documenso's compose file, behind the header a render writes.
const COMPOSE = [
  '# flotilla tenant=erp template=templates/docker-compose.yml.hbs (generated: edit the template, not this file)',
  'services:',
  '  backend:',
  '    image: ${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}',
  '  documenso:',
  '    environment:',
  '      - NEXT_PRIVATE_INTERNAL_WEBAPP_URL=${NEXT_PRIVATE_INTERNAL_WEBAPP_URL:-http://localhost:$PORT}',
  '      - SECRET=${NEXTAUTH_SECRET:?set NEXTAUTH_SECRET}',
  '',
].join('\n');

async function coverage(tenantYaml: string, manifest: Partial<Manifest>, compose = COMPOSE) {
  const report = await buildPlan({
    fleet: fleet(tenantYaml),
    base: [renderedSide('erp', { 'docker-compose.yml': 'services: {}\n' })],
    head: [renderedSide('erp', { 'docker-compose.yml': compose }, manifest)],
  });
  return { coverage: report.tenants[0]!.envCoverage, report };
}

describe('plan env coverage', () => {
  it('names what compose would blank inside the defaults it uses, and the `:?` it stops on', async () => {
    const { coverage: c, report } = await coverage('mode: managed\n', { envPatch: { CUSTOM_TAG: '' } });
    expect(c.missing).toEqual(['ERPNEXT_VERSION', 'NEXTAUTH_SECRET', 'PORT']);
    expect(c.newlyMissing).toEqual(['ERPNEXT_VERSION', 'NEXTAUTH_SECRET', 'PORT']);
    expect(renderPlanMarkdown(report)).toContain('> - `erp`: `ERPNEXT_VERSION`, `NEXTAUTH_SECRET`, `PORT` (3 new in this change)');
  });

  it('needs no name inside a default the env patch makes unused', async () => {
    const { coverage: c } = await coverage('mode: managed\n', {
      envPatch: { CUSTOM_TAG: 'v15.1.0', NEXT_PRIVATE_INTERNAL_WEBAPP_URL: 'http://documenso:3000', NEXTAUTH_SECRET: 'x' },
    });
    expect(c.missing).toEqual([]);
  });

  it('takes the keys the host holds as set and not empty: secrets generated there and hostEnv', async () => {
    const { coverage: c } = await coverage('mode: adopted\nhostEnv: [CUSTOM_TAG, PORT]\n', { secrets: ['NEXTAUTH_SECRET'] });
    expect(c.missing).toEqual([]);
  });

  it('lets the env patch win over a key the host holds: an emptied value is empty', async () => {
    const { coverage: c } = await coverage('mode: adopted\nhostEnv: [CUSTOM_TAG, PORT, NEXTAUTH_SECRET]\n', {
      envPatch: { NEXTAUTH_SECRET: '', CUSTOM_TAG: '' },
    });
    expect(c.missing).toEqual(['ERPNEXT_VERSION', 'NEXTAUTH_SECRET']);
  });

  it('falls back to the manifest\'s required names for a tree without a compose file', async () => {
    const report = await buildPlan({
      fleet: fleet('mode: managed\n'),
      base: [],
      head: [renderedSide('erp', { 'nginx.conf': 'server {}\n' }, { requiredVariables: ['A', 'B'], envPatch: { A: '' } })],
    });
    expect(report.tenants[0]!.envCoverage.missing).toEqual(['B']);
  });
});
