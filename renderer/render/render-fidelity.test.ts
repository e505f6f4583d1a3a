// A tenant's files are exactly what Handlebars itself gives for that tenant alone:
// each template compiled on its own in a fresh Handlebars environment (strict, no
// escaping, the renderer's helpers) and called with that tenant's context. Nothing
// one tenant renders may reach another tenant's files, whatever else rendered
// before it in the same run.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import Handlebars from 'handlebars';
import { describe, expect, it } from 'vitest';
import { loadFleet, loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import { ENV_TEMPLATE, HEADER_PREFIX, loadTemplates, registerHelpers, renderFleet, templateContext, type RenderedTenant } from './render.js';

const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };
const ROOT = join(import.meta.dirname, '..', '..');
const SCOPE_TEMPLATES = join(import.meta.dirname, 'fixtures', 'scope-templates');

async function templateTexts(dir: string): Promise<Map<string, string>> {
  const texts = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.hbs')) continue;
    const full = join(entry.parentPath, entry.name);
    texts.set(full.slice(dir.length + 1), await readFile(full, 'utf8'));
  }
  return texts;
}

/** The reference: each template compiled alone, in an environment of its own, for one tenant. */
function handlebarsAlone(texts: Map<string, string>, context: object): Map<string, string> {
  const hb = Handlebars.create();
  registerHelpers(hb);
  const out = new Map<string, string>();
  for (const [source, text] of texts) out.set(source, hb.compile(text, { strict: true, noEscape: true })(context));
  return out;
}

/** A rendered file minus the `# flotilla tenant=...` header line, when it has one. */
const body = (content: string) => (content.startsWith(HEADER_PREFIX) ? content.slice(content.indexOf('\n') + 1) : content);

function expectEveryTenantAlone(fleet: Fleet, rendered: RenderedTenant[], texts: Map<string, string>): void {
  expect(rendered.map((r) => r.slug)).toEqual(fleet.tenants.map((t) => t.slug));
  for (const [i, tenant] of fleet.tenants.entries()) {
    const expected = handlebarsAlone(texts, templateContext(fleet, tenant));
    const files = new Map(rendered[i]!.files.map((f) => [f.path, f.content]));
    for (const [source, output] of expected) {
      if (source === ENV_TEMPLATE) continue;
      const path = source.slice(0, -'.hbs'.length);
      expect(body(files.get(path)!), `${tenant.slug}: ${path}`).toBe(output);
    }
    if (texts.has(ENV_TEMPLATE)) {
      const lines = Object.entries(rendered[i]!.manifest.envPatch).map(([k, v]) => `${k}=${v}\n`);
      expect(lines.join(''), `${tenant.slug}: env patch`).toBe(expected.get(ENV_TEMPLATE));
    }
  }
}

const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
/** Values a YAML tenant file can hold and the templates write out: quotes, backslashes, DEL, non-ASCII. */
const value = fc.oneof(word, fc.string({ unit: 'grapheme', maxLength: 12 }).filter((s) => !/[\r\n]/.test(s)), fc.constantFrom('"', '\\', '\u007f0\u007f', "it's", '{{x}}', 'é', ''));
const tag = fc.stringMatching(/^v[0-9]{1,2}\.[0-9]{1,2}(\.[0-9])?$/);

interface GeneratedTenant {
  env: Record<string, string>;
  labels: Record<string, string>;
  imageTag?: string;
  features: Record<string, boolean>;
  mode: 'managed' | 'adopted';
  paused: boolean;
}

const generatedTenant: fc.Arbitrary<GeneratedTenant> = fc.record({
  env: fc.dictionary(fc.constantFrom('LOG_LEVEL', 'SMTP_HOST', 'ADMIN_EMAIL', 'X_Y'), value, { maxKeys: 4 }),
  labels: fc.dictionary(fc.constantFrom('ring', 'region', 'team'), value, { maxKeys: 3 }),
  imageTag: fc.option(tag, { nil: undefined }),
  features: fc.record({ monitoring: fc.boolean(), tunnel: fc.boolean() }),
  mode: fc.constantFrom('managed', 'adopted'),
  paused: fc.boolean(),
});

/** A fleet loaded from tenant files, as `flotilla render` loads one (JSON is YAML). */
function fleetFrom(tenants: GeneratedTenant[]): Fleet {
  const files = new Map([
    [
      'fleet/fleet.yaml',
      'defaults:\n  imageTag: v1.0.0\n  registry: 127.0.0.1:5000/x\n  images:\n    api: api\n    web: web:1.2\n  domainSuffix: example.org\n  features:\n    monitoring: true\n    tunnel: false\n',
    ],
  ]);
  tenants.forEach((t, i) => {
    const { imageTag, ...rest } = t;
    files.set(`fleet/tenants/t${String(i).padStart(3, '0')}.yaml`, JSON.stringify(imageTag ? { ...rest, imageTag } : rest));
  });
  return loadFleetFromFiles(files);
}

describe('a tenant rendered in a fleet is that tenant rendered alone by Handlebars', () => {
  it('writes no other tenant into a file whose nested with blocks share one context (who.txt)', async () => {
    const example = await loadFleet(ROOT);
    const texts = new Map([['who.txt.hbs', (await templateTexts(SCOPE_TEMPLATES)).get('who.txt.hbs')!]]);
    const set = await loadTemplates(SCOPE_TEMPLATES);
    const rendered = renderFleet(example, set, SOURCE);
    for (const r of rendered) expect(r.files.find((f) => f.path === 'who.txt')!.content).toBe(`tenant=${r.slug}\n`);
    expectEveryTenantAlone(example, rendered, texts);
  });

  it('holds for the example fleet and its own templates', async () => {
    const fleet = await loadFleet(ROOT);
    const texts = await templateTexts(join(ROOT, 'templates'));
    expect(texts.size).toBeGreaterThan(5);
    expectEveryTenantAlone(fleet, renderFleet(fleet, await loadTemplates(join(ROOT, 'templates')), SOURCE), texts);
  });

  it('holds for generated fleets on templates using nested with/each, ../, @root, lookup, block params and every helper', async () => {
    const texts = await templateTexts(SCOPE_TEMPLATES);
    const set = await loadTemplates(SCOPE_TEMPLATES);
    // The fixtures call every helper the renderer registers, so a new helper must be tried here too.
    const called = [...texts.values()].join('\n');
    for (const helper of registerHelpers(Handlebars.create())) expect(called, `helper ${helper} untried`).toMatch(new RegExp(`[{(]${helper} `));
    fc.assert(
      fc.property(fc.array(generatedTenant, { minLength: 1, maxLength: 40 }), (tenants) => {
        const fleet = fleetFrom(tenants);
        // One template set across every generated fleet: whatever a render keeps between tenants is kept here too.
        expectEveryTenantAlone(fleet, renderFleet(fleet, set, SOURCE), texts);
      }),
      { numRuns: 60 },
    );
  });
});
