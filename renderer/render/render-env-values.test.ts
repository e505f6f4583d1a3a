// Env patch values as `flotilla check` and `render` judge them (both render every
// tenant through renderTenant): nothing may pass them that every agent would refuse.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRepo } from '../fleet/check.js';
import { patchEnvText, readEnvValues } from '../core/env-file.js';
import { EnvFileError, FleetConfigError, RenderedOutputError } from '../core/errors.js';
import { loadFleetFromFiles } from '../fleet/fleet.js';
import { compileTemplates, renderTenant } from './render.js';

const FLEET_YAML = 'defaults:\n  imageTag: v2.10.3\n  registry: 127.0.0.1:5000/flotilla\n  images:\n    api: api\n  domainSuffix: example.org\n';
const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };
// Triple braces: the value reaches the env patch as the fleet wrote it, not HTML-escaped.
const TEMPLATES = compileTemplates(new Map([['env.hbs', 'IMAGE_TAG={{imageTag}}\n{{#each env}}\n{{@key}}={{{this}}}\n{{/each}}\n']]));

/** The env patch `flotilla render` gives a tenant whose fleet file sets `env`. */
function renderedPatch(env: Record<string, string>, templates = TEMPLATES): Record<string, string> {
  const fleet = loadFleetFromFiles(
    new Map([
      ['fleet/fleet.yaml', FLEET_YAML],
      // JSON is YAML, and says every character exactly.
      ['fleet/tenants/linda.yaml', `domain: linda.example.org\nmode: adopted\nenv: ${JSON.stringify(env)}\n`],
    ]),
  );
  return renderTenant(fleet, fleet.tenants[0]!, templates, SOURCE).manifest.envPatch;
}

describe('env patch values in check and render', () => {
  it("passes a value with both $ and ' (issue 13), which the agents then write so compose reads it back", () => {
    const patch = renderedPatch({ PROMO: "it's $5 off" });
    expect(patch.PROMO).toBe("it's $5 off");
    const v2 = patchEnvText('A=1\n', patch, '.env', 'v2').text;
    expect(v2).toContain('PROMO="it\'s \\$5 off"\n');
    expect(readEnvValues(v2, '.env', 'v2').get('PROMO')).toBe("it's $5 off");
    const v1 = patchEnvText('A=1\n', patch, '.env', 'v1').text;
    expect(v1).toContain("PROMO='it\\'s $5 off'\n");
    expect(readEnvValues(v1, '.env', 'v1').get('PROMO')).toBe("it's $5 off");
  });

  it('refuses a value no compose can hold (a carriage return inside a line), naming key and line, never the value', () => {
    // The fleet loader refuses control characters in env values; a template can still write one.
    const templates = compileTemplates(new Map([['env.hbs', 'IMAGE_TAG={{imageTag}}\nNOTE=top\rsecret\n']]));
    let err: unknown;
    try {
      renderedPatch({}, templates);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RenderedOutputError);
    const message = (err as Error).message;
    expect(message).toContain('output line 2: NOTE: value contains a line break');
    expect(message).not.toContain('secret');
  });

  it('passes only what every agent writes: each value render accepts, a compose v2 host writes and reads back', () => {
    const chars = ['a', ' ', '\t', '#', "'", '"', '\\', '$', '{', '}', ':', '-', '=', 'é', '😀', '\r', '\u2028', '\ud800'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...chars), { maxLength: 12 }).map((a) => a.join('')), (value) => {
        let patch: Record<string, string>;
        try {
          patch = renderedPatch({ V: value });
        } catch (e) {
          // Refused by the fleet loader (control characters) or by render
          if (e instanceof FleetConfigError) return;
          expect(e).toBeInstanceOf(RenderedOutputError);
          // Refused by render: the v2 patcher refuses it too, so no host could have written it.
          expect(() => patchEnvText('', { V: value }, '.env', 'v2')).toThrow(EnvFileError);
          return;
        }
        // The env patch line is `KEY=value` up to the line's end; the value arrives whole.
        expect(patch.V).toBe(value);
        const written = patchEnvText('A=1\n', patch, '.env', 'v2').text;
        expect(readEnvValues(written, '.env', 'v2').get('V')).toBe(value);
      }),
      { numRuns: 300 },
    );
  });

  it('flotilla check passes the issue 13 value and fails a fleet whose env patch no host could write', async () => {
    const root = await mkdtemp(join(tmpdir(), 'flotilla-check-env-'));
    try {
      await mkdir(join(root, 'fleet/tenants'), { recursive: true });
      await mkdir(join(root, 'templates'));
      await writeFile(join(root, 'fleet/fleet.yaml'), FLEET_YAML);
      await writeFile(join(root, 'fleet/tenants/linda.yaml'), `domain: linda.example.org\nmode: adopted\nenv: ${JSON.stringify({ PROMO: "it's $5 off" })}\n`);
      await writeFile(join(root, 'templates/env.hbs'), '{{#each env}}\n{{@key}}={{{this}}}\n{{/each}}\n');
      expect(await checkRepo(root)).toMatchObject({ tenants: 1 });

      await writeFile(join(root, 'templates/env.hbs'), '{{#each env}}\n{{@key}}={{{this}}}\n{{/each}}\nNOTE=a\rb\n');
      await expect(checkRepo(root)).rejects.toThrow(/env\.hbs \(tenant linda\): output line 2: NOTE: value contains a line break/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
