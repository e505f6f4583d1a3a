// The rollout settings in fleet/: maintenance windows on the fleet defaults and on a
// tenant (a tenant's own replaces the default), autoRollback, and the errors a bad
// window gives (file, key path, line, what is wrong).
import { describe, expect, it } from 'vitest';
import { FleetConfigError } from '../../renderer/core/errors.js';
import { loadFleetFromFiles } from '../../renderer/fleet/fleet.js';

const FLEET = `defaults:
  imageTag: v1
  registry: 127.0.0.1:5000/x
  images: { api: api }
  domainSuffix: example.org
  window: Sun 02:00-05:00 Europe/Berlin
autoRollback: false
`;

function load(fleet: string, tenants: Record<string, string>) {
  return loadFleetFromFiles(new Map([['fleet/fleet.yaml', fleet], ...Object.entries(tenants).map(([s, t]) => [`fleet/tenants/${s}.yaml`, t] as [string, string])]));
}

describe('fleet maintenance windows and autoRollback', () => {
  it('gives tenants the fleet window unless they set their own', () => {
    const fleet = load(FLEET, { a: 'mode: managed\n', b: 'mode: managed\nwindow:\n  - Sat 01:00-02:00 UTC\n  - Wed 01:00-02:00 UTC\n' });
    expect(fleet.tenants.map((t) => [t.slug, t.windows])).toEqual([
      ['a', ['Sun 02:00-05:00 Europe/Berlin']],
      ['b', ['Sat 01:00-02:00 UTC', 'Wed 01:00-02:00 UTC']],
    ]);
    expect(fleet.autoRollback).toBe(false);
    expect(load(FLEET.replace('autoRollback: false\n', ''), {}).autoRollback).toBe(true);
  });

  it('names the file, key and line of a bad window', () => {
    let error: unknown;
    try {
      load(FLEET.replace('Europe/Berlin', 'Europe/Atlantis'), { b: 'mode: managed\nwindow:\n  - Sat 01:00-02:00 UTC\n  - Caturday 01:00-02:00\n' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FleetConfigError);
    expect((error as FleetConfigError).problems).toEqual([
      expect.objectContaining({ file: 'fleet/fleet.yaml', keyPath: 'defaults.window', line: 6, message: expect.stringContaining('unknown time zone "Europe/Atlantis"') }),
      expect.objectContaining({ file: 'fleet/tenants/b.yaml', keyPath: 'window[1]', line: 4, message: expect.stringContaining('"Caturday" is not a weekday') }),
    ]);
  });
});
