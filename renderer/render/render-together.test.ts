// Rendering a tenant's templates in one Handlebars call must give exactly what one
// call per template gives: the same bytes, the same refusals, the same errors.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TemplateError } from '../core/errors.js';
import { loadFleet, loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import { compileTemplates, loadTemplates, renderFleet, templateContext, type TemplateSet } from './render.js';

const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };
const ROOT = join(import.meta.dirname, '..', '..');
/** Enough tenants that anything a render keeps between tenants would show. */
const TENANTS = 40;

/** Each template's output from its own call, as before rendering together. */
const oneByOne = (set: TemplateSet, context: object) => set.all.filter((t) => t.render).map((t) => t.render!(context));

function fleetOf(tenantYaml: (i: number) => string, count = TENANTS): Fleet {
  const files = new Map([
    ['fleet/fleet.yaml', 'defaults:\n  imageTag: v1\n  registry: 127.0.0.1:5000/x\n  images:\n    api: api\n  domainSuffix: example.org\n  features:\n    x: false\n'],
  ]);
  for (let i = 0; i < count; i++) files.set(`fleet/tenants/t${String(i).padStart(2, "0")}.yaml`, `domain: t${i}.example.org\nmode: managed\n${tenantYaml(i)}`);
  return loadFleetFromFiles(files);
}

describe('rendering a tenant’s templates in one call', () => {
  it('gives every example tenant the bytes each template gives on its own', async () => {
    const fleet = await loadFleet(ROOT);
    const set = await loadTemplates(join(ROOT, 'templates'));
    const compiled = set.all.filter((t) => t.render);
    expect(compiled.length).toBeGreaterThan(5);
    expect(compiled.every((t) => t.together)).toBe(true);
    for (const tenant of fleet.tenants) {
      const context = templateContext(fleet, tenant);
      expect(set.renderTogether(compiled, context)).toEqual(oneByOne(set, context));
    }
  });

  it('renders a fleet the same with it as a fresh render of each tenant alone', () => {
    const templates = new Map([
      ['a.conf.hbs', '# {{slug}}\n{{#each env}}{{@key}}={{this}}\n{{/each}}'],
      ['b.yml.hbs', 'site: {{json domain}}\n{{#if features.x}}x: on\n{{/if}}'],
      ['c.txt.hbs', '  {{slug}}\n'],
      ['env.hbs', 'DOMAIN={{domain}}\n'],
    ]);
    const fleet = fleetOf((i) => `env:\n  N: "${i}"\nfeatures:\n  x: ${i % 2 === 0}\n`);
    const together = renderFleet(fleet, compileTemplates(templates), SOURCE);
    const alone = fleet.tenants.map((t) => renderFleet(fleet, compileTemplates(templates), SOURCE, { tenants: [t.slug] })[0]);
    expect(together).toEqual(alone);
    expect(together[TENANTS - 1]!.files.find((f) => f.path === 'c.txt')!.content).toBe(`  t${TENANTS - 1}\n`);
  });

  it('falls back to one call each when an output holds the separator, and renders it intact', () => {
    const set = compileTemplates(new Map([['a.txt.hbs', '{{env.X}}|'], ['b.txt.hbs', '{{slug}}|']]));
    const hostile = '\u0001flotilla-template-end\u0001';
    const context = { env: { X: `left${hostile}right` }, slug: 's' };
    expect(set.renderTogether(set.all, context)).toBeUndefined();
    const fleet = fleetOf((i) => `env:\n  X: "left\\x01flotilla-template-end\\x01right-${i}"\n`);
    const rendered = renderFleet(fleet, set, SOURCE);
    expect(rendered[TENANTS - 1]!.files.find((f) => f.path === 'a.txt')!.content).toBe(`left${hostile}right-${TENANTS - 1}|`);
  });

  it('names the template, tenant, line and variable of an error in a template rendered together', () => {
    const set = compileTemplates(
      new Map([
        ['a.conf.hbs', '{{#each env}}{{this}}{{/each}}\n'],
        ['b.conf.hbs', '{{#each env}}{{this}}{{/each}}\nport: {{env.PORT}}\n'],
      ]),
    );
    const fleet = fleetOf((i) => (i === 35 ? 'env:\n  OTHER: "1"\n' : 'env:\n  PORT: "80"\n'));
    let error: unknown;
    try {
      renderFleet(fleet, set, SOURCE);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemplateError);
    expect((error as Error).message).toContain('templates/b.conf.hbs');
    expect((error as Error).message).toContain('tenant t35');
    expect((error as Error).message).toContain(':2 ');
    expect((error as Error).message).toContain('env.PORT');
  });

  it('keeps a template with partials or decorators to its own call, where it fails or renders as before', () => {
    const inline = '{{#*inline "row"}}- {{slug}}\n{{/inline}}{{> row}}';
    const set = compileTemplates(new Map([['a.txt.hbs', inline], ['b.txt.hbs', '{{slug}}\n'], ['c.txt.hbs', '{{domain}}\n']]));
    expect(set.all.map((t) => t.together)).toEqual([false, true, true]);
    const rendered = renderFleet(fleetOf(() => ''), set, SOURCE);
    expect(rendered[TENANTS - 1]!.files.find((f) => f.path === 'a.txt')!.content).toBe(`- t${TENANTS - 1}\n`);
    // A template cannot reach another one by the name it has inside the one-call renderer.
    const reaching = compileTemplates(new Map([['a.txt.hbs', '{{> t1}}'], ['b.txt.hbs', '{{slug}}\n'], ['c.txt.hbs', '{{domain}}\n']]));
    expect(() => renderFleet(fleetOf(() => ''), reaching, SOURCE)).toThrow(/templates\/a\.txt\.hbs.*partial t1 could not be found/);
  });

  it('denies prototype access exactly as a call of its own does', () => {
    const set = compileTemplates(
      new Map([
        ['a.txt.hbs', '{{#with env}}[{{lookup this "constructor"}}]{{/with}}'],
        ['b.txt.hbs', '[{{lookup env "__proto__"}}][{{lookup env "hasOwnProperty"}}]'],
      ]),
    );
    const context = { env: { A: '1' } };
    const outputs = oneByOne(set, context);
    expect(outputs).toEqual(['[]', '[][]']);
    expect(set.renderTogether(set.all, context)).toEqual(outputs);
  });
});
