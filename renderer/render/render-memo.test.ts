// The compose scan memo (one YAML parse per distinct compose body) must never hand
// one tenant another tenant's variables, however alike their bodies are, and the
// env patch and manifest must be the same with or without it.
import { describe, expect, it } from 'vitest';
import { RenderedOutputError } from '../core/errors.js';
import { loadFleetFromFiles } from '../fleet/fleet.js';
import { compileTemplates, renderFleet } from './render.js';

const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };

// Tenant env values pick the variable each compose file requires: VAR_A vs VAR_B
// gives bodies of the same length that differ in one character.
function fleetOf(tenants: Record<string, string>) {
  const files = new Map([
    ['fleet/fleet.yaml', 'defaults:\n  imageTag: v1\n  registry: 127.0.0.1:5000/x\n  images:\n    api: api\n  domainSuffix: example.org\n'],
  ]);
  for (const [slug, which] of Object.entries(tenants)) files.set(`fleet/tenants/${slug}.yaml`, `domain: ${slug}.example.org\nmode: managed\nenv:\n  WHICH: ${JSON.stringify(which)}\n`);
  return loadFleetFromFiles(files);
}

const templates = () =>
  compileTemplates(
    new Map([
      ['docker-compose.yml.hbs', 'services:\n  api:\n    image: api\n    environment:\n      X: $VAR_{{env.WHICH}}\n'],
      ['env.hbs', 'WHICH={{env.WHICH}}\n'],
    ]),
  );

describe('compose scan memo', () => {
  it('gives each tenant the variables of its own compose body, also for same-length bodies', () => {
    const fleet = fleetOf({ alpha: 'A', bravo: 'B', charlie: 'A', delta: 'C' });
    const set = templates();
    const first = renderFleet(fleet, set, SOURCE).map((r) => [r.slug, r.manifest.requiredVariables]);
    expect(first).toEqual([
      ['alpha', ['VAR_A']],
      ['bravo', ['VAR_B']],
      ['charlie', ['VAR_A']],
      ['delta', ['VAR_C']],
    ]);
    // A second render through the warm memo, and one through a fresh set, agree byte for byte.
    const warm = renderFleet(fleet, set, SOURCE);
    const cold = renderFleet(fleet, templates(), SOURCE);
    expect(warm).toEqual(cold);
  });

  it('hands out copies: changing one manifest does not change another tenant', () => {
    const fleet = fleetOf({ alpha: 'A', charlie: 'A' });
    const [a, c] = renderFleet(fleet, templates(), SOURCE);
    a!.manifest.requiredVariables.push('MUTATED');
    expect(c!.manifest.requiredVariables).toEqual(['VAR_A']);
  });

  it('still rejects a compose body that is not YAML, for every tenant rendering it', () => {
    const fleet = fleetOf({ alpha: 'A', bravo: 'B: x: y' });
    const err = (() => {
      try {
        renderFleet(fleet, templates(), SOURCE);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RenderedOutputError);
    expect(String((err as Error).message)).toContain('bravo');
  });
});
