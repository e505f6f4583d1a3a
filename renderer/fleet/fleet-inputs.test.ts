// Fleet inputs a user gets wrong in ways YAML hides: a tag YAML reads as a number
// (`imageTag: 2.10` is 2.1), and a tenant two waves both take.
import { describe, expect, it } from 'vitest';
import { FleetConfigError } from '../core/errors.js';
import { loadFleetFromFiles } from './fleet.js';

const DEFAULTS = `defaults:
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.org
`;

function messageOf(files: Record<string, string>): string {
  try {
    loadFleetFromFiles(new Map(Object.entries({ 'fleet/fleet.yaml': DEFAULTS, ...files })));
  } catch (e) {
    expect(e).toBeInstanceOf(FleetConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a FleetConfigError');
}

describe('a string key given a YAML number', () => {
  it('refuses imageTag: 2.10 in a tenant file, naming file, line and key, and says to quote it', () => {
    expect(messageOf({ 'fleet/tenants/linda.yaml': 'mode: managed\n\nimageTag: 2.10\n' })).toBe(
      'fleet/tenants/linda.yaml:3: imageTag: must be string, not number 2.1 (YAML reads 2.10 as number 2.1); quote it to keep it text: imageTag: "2.10"',
    );
  });

  it('refuses it in the fleet defaults too', () => {
    expect(messageOf({ 'fleet/fleet.yaml': DEFAULTS.replace('imageTag: v2.10.3', 'imageTag: 2.10') })).toBe(
      'fleet/fleet.yaml:2: defaults.imageTag: must be string, not number 2.1 (YAML reads 2.10 as number 2.1); quote it to keep it text: imageTag: "2.10"',
    );
  });

  it('says the same for any string key: a label, a domain, a list item, a boolean', () => {
    const message = messageOf({
      'fleet/tenants/linda.yaml': 'mode: managed\ndomain: 12\nlabels:\n  version: 1.10\n  canary: true\nhostEnv: [A, 0x1F]\n',
    });
    expect(message.split('\n').sort()).toEqual(
      [
        'fleet/tenants/linda.yaml:2: domain: must be string, not number 12; quote it to keep it text: domain: "12"',
        'fleet/tenants/linda.yaml:4: labels.version: must be string, not number 1.1 (YAML reads 1.10 as number 1.1); quote it to keep it text: version: "1.10"',
        'fleet/tenants/linda.yaml:5: labels.canary: must be string, not boolean true; quote it to keep it text: canary: "true"',
        'fleet/tenants/linda.yaml:6: hostEnv[1]: must be string, not number 31 (YAML reads 0x1F as number 31); quote it to keep it text: - "0x1F"',
      ].sort(),
    );
  });

  it('says it once for a window, which may be a string or a list', () => {
    expect(messageOf({ 'fleet/tenants/linda.yaml': 'mode: managed\nwindow: 5\n' })).toBe(
      'fleet/tenants/linda.yaml:2: window: must be string or array, not number 5; quote it to keep it text: window: "5"',
    );
    expect(messageOf({ 'fleet/tenants/linda.yaml': 'mode: managed\nwindow: [3]\n' })).toBe(
      'fleet/tenants/linda.yaml:2: window[0]: must be string, not number 3; quote it to keep it text: - "3"',
    );
  });

  it('takes the quoted value', () => {
    const fleet = loadFleetFromFiles(
      new Map([
        ['fleet/fleet.yaml', DEFAULTS],
        ['fleet/tenants/linda.yaml', 'mode: managed\nimageTag: "2.10"\n'],
      ]),
    );
    expect(fleet.tenants[0]!.imageTag).toBe('2.10');
  });
});

describe('a tenant in two waves', () => {
  const tenants = {
    'fleet/tenants/linda.yaml': 'mode: managed\nlabels:\n  ring: early\n',
    'fleet/tenants/pia.yaml': 'mode: managed\nlabels:\n  ring: general\n',
  };

  it('is refused when one wave names it and another selects it by labels, naming the tenant and both waves', () => {
    const fleet = `${DEFAULTS}waves:\n  - name: canary\n    tenants: [linda]\n  - name: early\n    selector:\n      ring: early\n`;
    expect(messageOf({ 'fleet/fleet.yaml': fleet, ...tenants })).toBe(
      'fleet/fleet.yaml:12: waves[1].selector: tenant "linda" is in two waves: "canary" (by name, line 9) and "early" (its labels match the selector, line 12); a tenant rolls out in one wave, so remove it from one',
    );
  });

  it('is refused when two waves both name it', () => {
    const fleet = `${DEFAULTS}waves:\n  - name: canary\n    tenants: [linda]\n  - name: rest\n    tenants:\n      - pia\n      - linda\n`;
    expect(messageOf({ 'fleet/fleet.yaml': fleet, ...tenants })).toBe(
      'fleet/fleet.yaml:13: waves[1].tenants[1]: tenant "linda" is in two waves: "canary" (by name, line 9) and "rest" (by name, line 13); a tenant rolls out in one wave, so remove it from one',
    );
  });

  it('is refused when two selectors both match it', () => {
    const fleet = `${DEFAULTS}waves:\n  - name: early\n    selector:\n      ring: early\n  - name: managed\n    selector:\n      ring: early\n`;
    expect(messageOf({ 'fleet/fleet.yaml': fleet, ...tenants })).toMatch(/^fleet\/fleet\.yaml:13: waves\[1\]\.selector: tenant "linda" is in two waves: "early" .* and "managed"/);
  });

  it('is fine in one wave, with the rest left to the unassigned wave', () => {
    const fleet = `${DEFAULTS}waves:\n  - name: canary\n    tenants: [linda]\n  - name: general\n    selector:\n      ring: general\n`;
    const loaded = loadFleetFromFiles(new Map(Object.entries({ 'fleet/fleet.yaml': fleet, ...tenants })));
    expect(loaded.waves.map((w) => [w.name, w.tenants])).toEqual([
      ['canary', ['linda']],
      ['general', ['pia']],
    ]);
  });
});
