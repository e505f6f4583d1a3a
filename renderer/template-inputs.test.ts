// A template's output may be reused for another tenant only when every value it can
// read is the same; these tests hold the read analysis and the key to that.
import fc from 'fast-check';
import Handlebars from 'handlebars';
import { describe, expect, it } from 'vitest';
import { loadFleetFromFiles } from './fleet.js';
import { compileTemplates, renderFleet } from './render.js';
import { inputKey, templateInputs } from './template-inputs.js';

const inputsOf = (text: string) => {
  const inputs = templateInputs(Handlebars.parse(text));
  return inputs && [...inputs.keyed, ...inputs.verbatim].map((p) => p.join('.')).sort();
};

describe('templateInputs', () => {
  it('lists the context paths a template reads, helpers and sub-expressions included', () => {
    expect(inputsOf('image: {{images.api}}:{{composeVar "TAG" (default env.TAG imageTag)}}\n{{#if features.x}}on{{/if}}')).toEqual([
      'composeVar',
      'default',
      'env.TAG',
      'features.x',
      'imageTag',
      'images.api',
    ]);
  });

  it('counts a loop as reading the whole list, and ../ and @root as reading the root', () => {
    expect(inputsOf('{{#each env}}{{@key}}={{this}} {{../slug}} {{@root.domain}}{{/each}}')).toEqual(['domain', 'env', 'slug']);
    expect(inputsOf('{{#with labels}}{{team}}{{else}}{{domain}}{{/with}}')).toEqual(['domain', 'labels']);
    expect(inputsOf('{{#each a}}{{#each b}}{{../../c}}{{../d}}{{/each}}{{/each}}')).toEqual(['a', 'c']);
  });

  it('gives up on what it cannot bound: the whole context, partials, other block helpers', () => {
    expect(inputsOf('{{this}}')).toBeUndefined();
    expect(inputsOf('{{json .}}')).toBeUndefined();
    expect(inputsOf('{{> header}}')).toBeUndefined();
    expect(inputsOf('{{#custom slug}}x{{/custom}}')).toBeUndefined();
  });
});

describe('values only written out as they are', () => {
  const split = (text: string) => {
    const inputs = templateInputs(Handlebars.parse(text), new Set(['json', 'concat', 'eq', 'default', 'if', 'each']), new Set(['json', 'concat']));
    return inputs && { keyed: inputs.keyed.map((p) => p.join('.')).sort(), verbatim: inputs.verbatim.map((p) => p.join('.')).sort() };
  };

  it('are values written bare, through json or concat, or from inside a loop by ../ or @root', () => {
    expect(split('{{domain}} {{json slug}} {{json (concat "api." host)}} {{#each list}}{{../site}}{{@root.zone}}{{/each}}')).toEqual({
      keyed: ['list'],
      verbatim: ['domain', 'host', 'site', 'slug', 'zone'],
    });
  });

  it('are keyed when anything decides on them, or reads inside or around them', () => {
    expect(split('{{domain}}{{#if domain}}x{{/if}}')).toEqual({ keyed: ['domain'], verbatim: [] });
    expect(split('{{slug}}{{eq slug "a"}}')).toEqual({ keyed: ['slug'], verbatim: [] });
    expect(split('{{json (eq slug "a")}}{{default tag "v1"}}')).toEqual({ keyed: ['slug', 'tag'], verbatim: [] });
    expect(split('{{domain}} {{domain.length}}')).toEqual({ keyed: ['domain', 'domain.length'], verbatim: [] });
    expect(split('{{env.A}}{{#each env}}{{this}}{{/each}}')).toEqual({ keyed: ['env', 'env.A'], verbatim: [] });
  });
});

describe('inputKey', () => {
  const paths = [['env', 'A'], ['slug', 'length'], ['n']];
  const key = (context: object) => inputKey(context, paths);

  it('is equal for equal values and tells apart what renders or compares differently', () => {
    expect(key({ env: { A: 'x', B: 'ignored' }, slug: 'abc', n: 1, other: 1 })).toBe(key({ env: { A: 'x', B: 'other' }, slug: 'abc', n: 1, other: 2 }));
    const distinct = [
      { env: { A: 'x' }, slug: 'ab', n: 1 }, // a string's .length read
      { env: { A: '1' }, slug: 'abc', n: 1 },
      { env: { A: 1 }, slug: 'abc', n: 1 }, // eq tells "1" from 1
      { env: {}, slug: 'abc', n: 1 }, // missing: strict mode fails
      { env: { A: undefined }, slug: 'abc', n: 1 },
      { env: { A: null }, slug: 'abc', n: 1 },
      { env: { A: 'x' }, slug: 'abc', n: -0 },
      { env: { A: 'x' }, slug: 'abc', n: Number.NaN },
      { env: { A: 'x' }, slug: 'abc', n: null },
      { env: { A: ['x'] }, slug: 'abc', n: 1 },
      { env: { A: { x: 1, y: 2 } }, slug: 'abc', n: 1 },
      { env: { A: { y: 2, x: 1 } }, slug: 'abc', n: 1 }, // each iterates in key order
    ];
    const keys = distinct.map(key);
    expect(new Set(keys).size).toBe(distinct.length);
  });
});

describe('reusing template outputs across tenants', () => {
  const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };
  const TEMPLATES = new Map([
    [
      'docker-compose.yml.hbs',
      'services:\n  api:\n    image: {{images.api}}:{{composeVar "IMAGE_TAG" imageTag}}\n    environment:\n{{#each env}}      {{@key}}: {{json this}}\n{{/each}}{{#if features.extra}}  extra:\n    image: {{images.api}}\n{{/if}}',
    ],
    ['configs/app.yml.hbs', 'tenant: {{slug}}\ndomain: {{json domain}}\nsite: {{json (concat slug "-web")}}\n'],
    ['configs/first.yml.hbs', 'first: {{#if (eq slug "t0")}}yes{{else}}no{{/if}}\n'],
    // env.A is only written out, as is and through json: hostile values must come out exactly.
    ['configs/values.yml.hbs', 'a: {{json env.A}}\nraw: {{env.A}}|{{concat env.A "-" slug}}\n'],
    ['env.hbs', 'LOG_LEVEL={{default env.LOG_LEVEL "info"}}\n'],
  ]);
  const fleetOf = (tenants: { tag?: string; env: Record<string, string>; extra: boolean }[]) => {
    const files = new Map([
      [
        'fleet/fleet.yaml',
        'defaults:\n  imageTag: v1\n  registry: 127.0.0.1:5000/x\n  images:\n    api: api\n  domainSuffix: example.org\n  features:\n    extra: false\n',
      ],
    ]);
    tenants.forEach((t, i) =>
      files.set(
        `fleet/tenants/t${i}.yaml`,
        `domain: t${i}.example.org\nmode: managed\n${t.tag ? `imageTag: ${t.tag}\n` : ''}env: ${JSON.stringify(t.env)}\nfeatures:\n  extra: ${t.extra}\n`,
      ),
    );
    return loadFleetFromFiles(files);
  };

  it('renders every tenant exactly as a render of that tenant alone would', () => {
    const tenant = fc.record({
      tag: fc.option(fc.constantFrom('v1', 'v2', 'v1.0'), { nil: undefined }),
      env: fc
        .tuple(
          fc.constantFrom('x', 'a"b', 'back\\slash', '\u007f0\u007f', '\u007f', 'tab\there', '\u00e9t\u00e9 😀', 'lone \ud800', '', '1'),
          fc.dictionary(fc.constantFrom('LOG_LEVEL', 'TZ', 'B'), fc.constantFrom('info', 'debug', 'UTC', '1', ''), { maxKeys: 3 }),
        )
        .map(([a, rest]) => ({ A: a, ...rest })),
      extra: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(tenant, { minLength: 1, maxLength: 40 }), (tenants) => {
        const fleet = fleetOf(tenants);
        const shared = renderFleet(fleet, compileTemplates(TEMPLATES), SOURCE);
        const alone = fleet.tenants.map((t) => renderFleet(fleet, compileTemplates(TEMPLATES), SOURCE, { tenants: [t.slug] })[0]);
        expect(shared).toEqual(alone);
      }),
      { numRuns: 60 },
    );
  });

  it('renders a template that holds the marker character itself without markers, correctly for every tenant', () => {
    const fleet = fleetOf(Array.from({ length: 40 }, () => ({ env: { A: 'x' }, extra: false })));
    const set = compileTemplates(new Map([['raw.txt.hbs', 'del:\u007f0\u007f {{slug}}\n']]));
    expect(set.files[0]!.inputs!.verbatim).toEqual([]);
    const rendered = renderFleet(fleet, set, SOURCE);
    expect(rendered.map((r) => r.files.find((f) => f.path === 'raw.txt')!.content)).toEqual(
      fleet.tenants.map((t) => `del:\u007f0\u007f ${t.slug}\n`),
    );
  });

  it('reuses the compose output of tenants with the same inputs, and stops trying for a per-tenant template', () => {
    const fleet = fleetOf(Array.from({ length: 50 }, (_, i) => ({ env: { A: 'x', LOG_LEVEL: i % 2 ? 'info' : 'debug' }, extra: false })));
    const set = compileTemplates(TEMPLATES);
    const rendered = renderFleet(fleet, set, SOURCE);
    const compose = set.files.find((t) => t.output === 'docker-compose.yml')!;
    const app = set.files.find((t) => t.output === 'configs/app.yml')!;
    const first = set.files.find((t) => t.output === 'configs/first.yml')!;
    expect(compose.reuse).toMatchObject({ lookups: 50, hits: 48 });
    expect(compose.reuse!.outputs.size).toBe(2);
    // slug and domain are only written out: one output serves all, each tenant's values put in.
    expect(app.reuse).toMatchObject({ lookups: 50, hits: 49 });
    expect(rendered.find((r) => r.slug === 't49')!.files.find((f) => f.path === 'configs/app.yml')!.content).toContain(
      'tenant: t49\ndomain: "t49.example.org"\nsite: "t49-web"\n',
    );
    // eq decides on slug: no two tenants share an input, so it stops trying after the probe.
    expect(first.reuse).toBeUndefined();
  });
});
