// Render benchmark: 1,000 tenants generated from the example fleet, every
// template, against a floor measured in the same run: the same compiled
// Handlebars templates called in a bare loop with nothing else (no headers,
// hashes, env patch, compose scan or manifest). The ratio says what the
// renderer adds on top of Handlebars itself: every template rendered for every
// tenant, plus the headers, hashes, env patch, compose scan and manifest.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadFleet, type Fleet, type Tenant } from '../renderer/fleet/fleet.js';
import { scanComposeText } from '../renderer/core/compose-vars.js';
import { serializeManifest, sha256 } from '../renderer/core/manifest.js';
import { forgetComposeScans, loadTemplates, renderFleet, templateContext, type RenderedTenant, type TemplateSet } from '../renderer/render/render.js';
import { benchRow, median, type BenchRow } from './bench-row.js';

export const BENCH_TENANTS = 1000;
// Odd, for the median; rounds interleave render and floor so load on the shared
// machine hits both alike.
const ROUNDS = 11;
const SOURCE = { repo: 'http://127.0.0.1/fleet.git', commit: '9d1a0c3b5e7f2a4c6e8b0d2f4a6c8e0b2d4f6a8c' };

/** The repo root, found from this file whether it runs from bench/ (tsx) or dist/bench/ (node). */
export function findRepoRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  let dir = start;
  while (!existsSync(join(dir, 'fleet', 'fleet.yaml')) || !existsSync(join(dir, 'templates'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no repo root (with fleet/fleet.yaml and templates/) above ${start}`);
    dir = up;
  }
  return dir;
}

/** `count` tenants cycling through the example fleet's, each with its own slug and domain. */
export function generateFleet(example: Fleet, count: number): Fleet {
  const tenants: Tenant[] = [];
  for (let i = 0; i < count; i++) {
    const base = example.tenants[i % example.tenants.length]!;
    const slug = `${base.slug}-${String(i).padStart(4, '0')}`;
    tenants.push({ ...base, slug, file: `fleet/tenants/${slug}.yaml`, domain: `${slug}.${example.defaults.domainSuffix}` });
  }
  return { ...example, tenants };
}

function floorRun(templates: TemplateSet, contexts: object[]): number {
  const renders = templates.all.flatMap((t) => (t.render ? [t.render] : []));
  // Outputs are kept, as a render keeps them; only the template calls are timed.
  const out: string[] = new Array(contexts.length * renders.length);
  let i = 0;
  const started = performance.now();
  for (const context of contexts) for (const render of renders) out[i++] = render(context);
  const ms = performance.now() - started;
  if (out.length === 0 || out[0]!.length === 0) throw new Error('floor rendered nothing');
  return ms;
}

/**
 * What the manifest obliges every render to do beyond the templates: hash each rendered
 * file (copied files' hashes are computed once per template set),
 * serialise the manifest, and parse + scan each distinct compose body once (the
 * requiredVariables; a fresh process has no memo).
 */
function requiredExtrasRun(rendered: RenderedTenant[], hashedPaths: ReadonlySet<string>): number {
  const composeBodies = new Set<string>();
  for (const r of rendered) {
    const compose = r.files.find((f) => f.path === 'docker-compose.yml');
    if (compose) composeBodies.add(compose.content.slice(compose.content.indexOf('\n') + 1));
  }
  const started = performance.now();
  let n = 0;
  for (const r of rendered) {
    for (const f of r.files) if (hashedPaths.has(f.path)) n += sha256(f.content).length;
    n += serializeManifest(r.manifest).length;
  }
  for (const body of composeBodies) n += scanComposeText(body, 'docker-compose.yml').required.length;
  const ms = performance.now() - started;
  if (n === 0) throw new Error('nothing hashed');
  return ms;
}

export async function benchRender(root = findRepoRoot()): Promise<BenchRow[]> {
  const example = await loadFleet(root);
  const fleet = generateFleet(example, BENCH_TENANTS);
  const templates = await loadTemplates(join(root, 'templates'));
  const contexts = fleet.tenants.map((t) => templateContext(fleet, t));

  // Both sides call the very same compiled template functions, warmed up first, so
  // the JIT state is the same and the difference is what the renderer adds.
  let rendered = renderFleet(fleet, templates, SOURCE);
  floorRun(templates, contexts);

  const hashedPaths = new Set(templates.files.filter((t) => t.render).map((t) => t.output));
  const renderMs: number[] = [];
  const floorMs: number[] = [];
  const extrasMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts with no compose scan, as a fresh process would.
    forgetComposeScans(templates);
    const started = performance.now();
    rendered = renderFleet(fleet, templates, SOURCE);
    renderMs.push(performance.now() - started);
    floorMs.push(floorRun(templates, contexts));
    extrasMs.push(requiredExtrasRun(rendered, hashedPaths));
  }
  const files = rendered.reduce((n, r) => n + r.files.length, 0);
  const ms = median(renderMs);
  const floor = median(floorMs);
  const extras = median(extrasMs);
  const round1 = (n: number) => Math.round(n * 10) / 10;
  return [
    benchRow({
      name: `render ${BENCH_TENANTS} tenants, every template (${files} files)`,
      unit: 'ms',
      value: round1(ms),
      baseline: round1(floor),
      ratio: Math.round((ms / floor) * 100) / 100,
      target: '<= 2x bare Handlebars loop',
      met: ms <= 2 * floor,
    }),
    benchRow({
      name: 'render throughput',
      unit: 'tenants/s',
      value: Math.round((BENCH_TENANTS / ms) * 1000),
      baseline: Math.round((BENCH_TENANTS / floor) * 1000),
      target: `${BENCH_TENANTS} tenants in < 2000 ms`,
      met: ms < 2000,
    }),
    benchRow({
      name: 'render vs floor + required work (sha256s, manifest JSON, YAML scan per distinct compose)',
      unit: 'ms',
      value: round1(ms),
      baseline: round1(floor + extras),
      ratio: Math.round((ms / (floor + extras)) * 100) / 100,
      target: 'informational: the manifest requires this work',
      met: true,
    }),
  ];
}
