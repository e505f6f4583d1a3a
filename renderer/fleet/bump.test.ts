import { describe, expect, it } from 'vitest';
import { FleetConfigError, SettingError } from '../core/errors.js';
import { bumpBody, bumpBranchName, noOpMessage, planBump, setYamlScalar } from './bump.js';
import { loadFleetFromFiles } from './fleet.js';

const FILES = new Map([
  [
    'fleet/fleet.yaml',
    `# Fleet-wide settings.
defaults:
  # The release every tenant runs unless its own file pins another tag.
  imageTag: v2.10.3   # bumped by flotilla bump --all
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.net
`,
  ],
  [
    'fleet/tenants/linda.yaml',
    `# Pinned to the previous release until her campaign ends.
domain: linda.cmlite.org
imageTag: "v2.9.7"
mode: adopted

labels:
  ring: general # rollout ring
`,
  ],
  ['fleet/tenants/pia.yaml', 'mode: adopted # install.sh host\n'],
  ['fleet/tenants/trbh.yaml', 'mode: managed\n'],
]);
const FLEET = loadFleetFromFiles(FILES);

describe('planBump', () => {
  it('changes only the tag of a pinned tenant, keeping comments, quotes and blank lines', () => {
    const plan = planBump(FILES, FLEET, { slugs: ['linda'], all: false, tag: 'v2.10.4' });
    expect(plan.moves).toEqual([{ slug: 'linda', from: 'v2.9.7', to: 'v2.10.4' }]);
    expect(plan.edits.get('fleet/tenants/linda.yaml')).toBe(
      FILES.get('fleet/tenants/linda.yaml')!.replace('"v2.9.7"', '"v2.10.4"'),
    );
  });

  it('pins a tenant that followed the default by adding imageTag, comments kept', () => {
    const plan = planBump(FILES, FLEET, { slugs: ['pia'], all: false, tag: 'v2.11.0-rc.1' });
    expect(plan.edits.get('fleet/tenants/pia.yaml')).toBe('mode: adopted # install.sh host\nimageTag: v2.11.0-rc.1\n');
    expect(plan.moves).toEqual([{ slug: 'pia', from: 'v2.10.3', to: 'v2.11.0-rc.1' }]);
  });

  it('is a no-op, with a message saying so, for tenants already on the tag', () => {
    const plan = planBump(FILES, FLEET, { slugs: ['pia', 'trbh'], all: false, tag: 'v2.10.3' });
    expect(plan.edits.size).toBe(0);
    expect(plan.alreadyThere).toEqual(['pia', 'trbh']);
    expect(noOpMessage(plan)).toBe('nothing to bump: already on v2.10.3: pia, trbh; no branch or pull request created');
  });

  it('moves only the tenants not yet on the tag when some are', () => {
    const plan = planBump(FILES, FLEET, { slugs: ['linda', 'pia'], all: false, tag: 'v2.10.3' });
    expect(plan.moves.map((m) => m.slug)).toEqual(['linda']);
    expect(plan.alreadyThere).toEqual(['pia']);
    expect([...plan.edits.keys()]).toEqual(['fleet/tenants/linda.yaml']);
  });

  it('with --all edits the fleet default in place and leaves pinned tenants where they are', () => {
    const plan = planBump(FILES, FLEET, { slugs: [], all: true, tag: 'v2.11.0' });
    expect(plan.edits.get('fleet/fleet.yaml')).toBe(FILES.get('fleet/fleet.yaml')!.replace('imageTag: v2.10.3', 'imageTag: v2.11.0'));
    expect(plan.moves.map((m) => m.slug)).toEqual(['pia', 'trbh']);
    expect(plan.pinned).toEqual([{ slug: 'linda', tag: 'v2.9.7' }]);
    expect(bumpBody(plan)).toContain('Fleet default `imageTag`: `v2.10.3` → `v2.11.0`');
    expect(bumpBody(plan)).toContain('Pinned to their own tag, not moved: `linda` (`v2.9.7`).');
  });

  it('refuses an invalid tag and unknown tenants before editing anything', () => {
    expect(() => planBump(FILES, FLEET, { slugs: ['pia'], all: false, tag: 'v2.10.3 beta' })).toThrow(SettingError);
    expect(() => planBump(FILES, FLEET, { slugs: ['pia'], all: false, tag: '-rc' })).toThrow(/not a valid image tag/);
    expect(() => planBump(FILES, FLEET, { slugs: ['nobody'], all: false, tag: 'v1' })).toThrow(/no tenant "nobody"/);
    expect(() => planBump(FILES, FLEET, { slugs: [], all: false, tag: 'v1' })).toThrow(/at least one tenant/);
  });

  it('lists each tenant old -> new in the PR body', () => {
    const plan = planBump(FILES, FLEET, { slugs: ['linda', 'trbh'], all: false, tag: 'v2.12.0' });
    expect(bumpBody(plan)).toContain('| `linda` | `v2.9.7` → `v2.12.0` |\n| `trbh` | `v2.10.3` → `v2.12.0` |');
  });
});

describe('bumpBranchName', () => {
  const plan = (slugs: string[], tag = 'v2.10.4') => planBump(FILES, FLEET, { slugs, all: false, tag });
  it('names the tenants and the tag', () => {
    expect(bumpBranchName(plan(['linda', 'pia']))).toBe('bump/linda-pia-v2.10.4');
    expect(bumpBranchName(planBump(FILES, FLEET, { slugs: [], all: true, tag: 'v3' }))).toBe('bump/all-v3');
  });
  it('shortens long lists and keeps the name a valid ref', () => {
    expect(bumpBranchName(plan(['linda', 'pia', 'trbh', 'linda']))).toBe('bump/linda-pia-trbh-v2.10.4');
    expect(bumpBranchName(plan(['pia'], 'v1..2.'))).toBe('bump/pia-v1.2_');
  });
});

describe('setYamlScalar', () => {
  it('quotes a tag YAML would read as a number', () => {
    expect(setYamlScalar('imageTag: v1 # note\n', ['imageTag'], '1.10', 'x.yaml')).toBe('imageTag: "1.10" # note\n');
    expect(setYamlScalar("imageTag: 'v1'\n", ['imageTag'], '1.10', 'x.yaml')).toBe("imageTag: '1.10'\n");
  });

  it('reports a file that is not YAML by name', () => {
    expect(() => setYamlScalar('a: [1', ['imageTag'], 'v1', 'fleet/tenants/x.yaml')).toThrow(FleetConfigError);
  });
});
