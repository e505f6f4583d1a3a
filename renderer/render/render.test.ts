import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { RenderedOutputError, TemplateCompileError, TemplateError } from '../core/errors.js';
import { MANIFEST_PATH, parseManifest, serializeManifest, sha256 } from '../core/manifest.js';
import { loadFleet, loadFleetFromFiles, type Fleet } from '../fleet/fleet.js';
import {
  HEADER_PREFIX,
  compileTemplates,
  composeVar,
  loadTemplates,
  renderFleet,
  renderTenant,
  type RenderedTenant,
} from './render.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const SOURCE = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };

function smallFleet(tenantYaml = 'domain: linda.cmlite.org\nmode: adopted\nenv:\n  SMTP_HOST: mail.cmlite.org\n'): Fleet {
  return loadFleetFromFiles(
    new Map([
      [
        'fleet/fleet.yaml',
        'defaults:\n  imageTag: v2.10.3\n  registry: 127.0.0.1:5000/flotilla\n  images:\n    api: changemaker-api\n  domainSuffix: example.org\n  secrets: [JWT_SECRET]\n  features:\n    monitoring: true\n',
      ],
      ['fleet/tenants/linda.yaml', tenantYaml],
    ]),
  );
}

function renderOne(templates: Record<string, string>, fleet = smallFleet(), source = SOURCE): RenderedTenant {
  return renderTenant(fleet, fleet.tenants[0]!, compileTemplates(new Map(Object.entries(templates))), source);
}

function fileOf(r: RenderedTenant, path: string): string {
  const f = r.files.find((x) => x.path === path);
  if (!f) throw new Error(`${path} not rendered; have ${r.files.map((x) => x.path).join(', ')}`);
  return f.content;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('renderTenant', () => {
  it("carries the tenant's adoption decision (adopt: replace) in the manifest the agent reads, and nothing when it is absent", () => {
    const decided = renderOne({ 'a.conf': 'x\n' }, smallFleet('mode: adopted\nadopt: replace\n'));
    const manifestText = fileOf(decided, MANIFEST_PATH);
    expect(parseManifest(manifestText).adopt).toBe('replace');
    expect(parseManifest(fileOf(renderOne({ 'a.conf': 'x\n' }), MANIFEST_PATH))).not.toHaveProperty('adopt');
  });

  const templates = {
    'docker-compose.yml.hbs':
      'services:\n  api:\n    image: {{images.api}}:{{composeVar "IMAGE_TAG" imageTag}}\n    environment:\n      SMTP_HOST: ${SMTP_HOST}\n      JWT_SECRET: ${JWT_SECRET:?required}\n      LOG_LEVEL: ${LOG_LEVEL:-info}\n',
    'env.hbs': 'IMAGE_TAG={{imageTag}}\n{{#each env}}\n{{@key}}={{this}}\n{{/each}}\n',
    'nginx/conf.d/default.conf.hbs': 'server_name {{join serverNames " "}};\n',
    'static/robots.txt': 'User-agent: *\nDisallow: /{{literal}}\n',
  };

  it('renders each template to its path minus .hbs, with the manifest, sorted by path', () => {
    const r = renderOne(templates);
    expect(r.files.map((f) => f.path)).toEqual([
      '.flotilla/manifest.json',
      'docker-compose.yml',
      'nginx/conf.d/default.conf',
      'static/robots.txt',
    ]);
    expect(r.files.every((f) => f.mode === 0o644)).toBe(true);
  });

  it('puts env.hbs output in the manifest env patch, never in a file', () => {
    const r = renderOne(templates);
    expect(r.manifest.envPatch).toEqual({ IMAGE_TAG: 'v2.10.3', SMTP_HOST: 'mail.cmlite.org' });
    expect(r.files.some((f) => f.path.startsWith('env'))).toBe(false);
  });

  it('writes a manifest the agent can parse, naming every file with its hash', () => {
    const r = renderOne(templates);
    const text = fileOf(r, MANIFEST_PATH);
    expect(text).toBe(serializeManifest(r.manifest));
    const m = parseManifest(text);
    expect(m).toMatchObject({ tenant: 'linda', mode: 'adopted', imageTag: 'v2.10.3', source: SOURCE, secrets: ['JWT_SECRET'] });
    expect(m.files).toEqual(
      r.files.filter((f) => f.path !== MANIFEST_PATH).map((f) => ({ path: f.path, sha256: sha256(f.content), mode: 0o644 })),
    );
    // Defaulted names (${LOG_LEVEL:-info}) are not required; plain and :? ones are.
    expect(m.requiredVariables).toEqual(['JWT_SECRET', 'SMTP_HOST']);
  });

  it('starts yaml and conf files with a header naming tenant and template, not the source commit; copies other files byte for byte', () => {
    const r = renderOne(templates);
    expect(fileOf(r, 'docker-compose.yml').split('\n')[0]).toBe(
      `${HEADER_PREFIX}linda template=templates/docker-compose.yml.hbs (generated: edit the template, not this file)`,
    );
    expect(fileOf(r, MANIFEST_PATH)).toContain(SOURCE.commit);
    // Another fleet commit changes the manifest alone: the host rewrites no other file.
    const later = renderOne(templates, smallFleet(), { repo: SOURCE.repo, commit: 'c'.repeat(40) });
    expect(later.files.filter((f, i) => f.content !== r.files[i]!.content).map((f) => f.path)).toEqual([MANIFEST_PATH]);
    expect(fileOf(r, 'nginx/conf.d/default.conf')).toBe(
      `${fileOf(r, 'nginx/conf.d/default.conf').split('\n')[0]}\nserver_name linda.cmlite.org www.linda.cmlite.org;\n`,
    );
    expect(fileOf(r, 'static/robots.txt')).toBe(templates['static/robots.txt']);
    expect(fileOf(r, MANIFEST_PATH).startsWith('{')).toBe(true);
  });

  it('fails on a missing variable naming template, line, tenant and variable instead of rendering empty', () => {
    const e = thrown(() =>
      renderOne({ 'nginx/conf.d/api.conf.hbs': '# api\nserver {\n    server_name {{env.API_HOST}};\n}\n' }),
    );
    expect(e).toBeInstanceOf(TemplateError);
    expect(e).toMatchObject({ template: 'templates/nginx/conf.d/api.conf.hbs', line: 3, tenant: 'linda', variable: 'env.API_HOST' });
    expect(e.message).toMatch(/^templates\/nginx\/conf\.d\/api\.conf\.hbs:3 \(tenant linda\): variable "env\.API_HOST" is not defined/);
  });

  it('names the line when a helper gets a missing value', () => {
    const e = thrown(() => renderOne({ 'docker-compose.yml.hbs': 'services:\n  api:\n    image: x:{{composeVar "IMAGE_TAG" imageTagg}}\n' }));
    expect(e).toBeInstanceOf(TemplateError);
    expect(e.message).toMatch(/^templates\/docker-compose\.yml\.hbs:3 \(tenant linda\): composeVar "IMAGE_TAG": the default value is undefined/);
  });

  it('fails when a template tests a feature flag the fleet does not declare', () => {
    const e = thrown(() => renderOne({ 'a.conf.hbs': '# a\n{{#if features.monitorng}}on{{/if}}\n' }));
    expect(e).toMatchObject({ template: 'templates/a.conf.hbs', line: 2, tenant: 'linda', variable: 'features.monitorng' });
  });

  it('fails with RenderedOutputError naming file, tenant and line when the compose output is not YAML', () => {
    // A value with ": " in it breaks a plain YAML scalar; {{json ...}} is the safe way.
    const fleet = smallFleet('mode: managed\nenv:\n  CMD: "serve --bind: 0.0.0.0"\n');
    const e = thrown(() => renderOne({ 'docker-compose.yml.hbs': 'services:\n  api:\n    command: {{env.CMD}}\n' }, fleet));
    expect(e).toBeInstanceOf(RenderedOutputError);
    expect(e.message).toMatch(/^docker-compose\.yml \(tenant linda\): not valid YAML \(line 4, /);
    const fixed = renderOne({ 'docker-compose.yml.hbs': 'services:\n  api:\n    command: {{json env.CMD}}\n' }, fleet);
    expect(parseYaml(fileOf(fixed, 'docker-compose.yml'))).toEqual({ services: { api: { command: 'serve --bind: 0.0.0.0' } } });
  });

  it('refuses an env patch that would carry a secret', () => {
    const e = thrown(() => renderOne({ 'env.hbs': 'IMAGE_TAG={{imageTag}}\nJWT_SECRET=oops\n' }));
    expect(e).toBeInstanceOf(RenderedOutputError);
    expect(e.message).toContain('env.hbs (tenant linda): output line 2: JWT_SECRET is a secret');
  });
});

describe('compileTemplates', () => {
  it('names template and line of a syntax error', () => {
    const e = thrown(() =>
      compileTemplates(new Map([['nginx/conf.d/services.conf.hbs', '# services\n{{#if features.monitoring}}\nserver {}\n']])),
    );
    expect(e).toBeInstanceOf(TemplateCompileError);
    // The block left open is named where it opens (line 2), not where the file ends.
    expect(e.message).toBe('templates/nginx/conf.d/services.conf.hbs:2: {{#if}} opened here is never closed (add {{/if}} where it ends)');
    const unclosed = thrown(() => compileTemplates(new Map([['a.yml.hbs', 'a: 1\nb: {{domain}\n']])));
    expect(unclosed.message).toMatch(/^templates\/a\.yml\.hbs:2: syntax error: /);
  });

  it('rejects an unknown helper at compile time, with its line', () => {
    const e = thrown(() => compileTemplates(new Map([['a.yml.hbs', 'a: 1\nb: {{composVar "X" imageTag}}\n']])));
    expect(e).toBeInstanceOf(TemplateCompileError);
    expect(e.message).toMatch(/^templates\/a\.yml\.hbs:2: .*composVar/);
  });

  it('rejects output paths the agent would refuse', () => {
    expect(() => compileTemplates(new Map([['.env.hbs', 'A=1\n']]))).toThrow(/templates\/\.env\.hbs: output path not allowed/);
  });
});

describe('compose variables next to Handlebars', () => {
  it('shows why the helper exists: ${NAME:-{{value}}} does not parse', () => {
    const e = thrown(() => compileTemplates(new Map([['docker-compose.yml.hbs', 'x: 1\nimage: api:${IMAGE_TAG:-{{imageTag}}}\n']])));
    expect(e).toBeInstanceOf(TemplateCompileError);
    expect(e.message).toMatch(/^templates\/docker-compose\.yml\.hbs:2: syntax error/);
  });

  it('composeVar prints ${NAME:-value}, or ${NAME} without a value', () => {
    const r = renderOne({
      'docker-compose.yml.hbs':
        'services:\n  api:\n    image: api:{{composeVar "IMAGE_TAG" imageTag}}\n    environment:\n      DOMAIN: {{composeVar "DOMAIN"}}\n      LOG: {{composeVar "LOG_LEVEL" (default env.LOG_LEVEL "info")}}\n',
    });
    const body = fileOf(r, 'docker-compose.yml').split('\n').slice(1).join('\n');
    expect(body).toBe('services:\n  api:\n    image: api:${IMAGE_TAG:-v2.10.3}\n    environment:\n      DOMAIN: ${DOMAIN}\n      LOG: ${LOG_LEVEL:-info}\n');
    expect(r.manifest.requiredVariables).toEqual(['DOMAIN']);
  });

  it('composeVar refuses a default compose would cut short', () => {
    expect(composeVar('A', 'v1')).toBe('${A:-v1}');
    expect(() => composeVar('A', 'x}y')).toThrow(/cannot hold }/);
    expect(() => composeVar('A', '$HOME')).toThrow(/cannot hold/);
    expect(() => composeVar('not-a-name', 'x')).toThrow(/not a variable name/);
  });
});

describe('loadTemplates', () => {
  it('keeps the executable bit and copies non-.hbs files byte for byte', async () => {
    const templates = await loadTemplates(`${fixtures}templates`);
    const fleet = smallFleet();
    const r = renderTenant(fleet, fleet.tenants[0]!, templates, SOURCE);
    const script = r.files.find((f) => f.path === 'bin/backup.sh')!;
    expect(script.mode).toBe(0o755);
    expect(script.content).toBe('#!/bin/sh\n# copied byte for byte: {{ not a template }} ${KEEP}  \nexec pg_dump "$@"');
    expect(r.manifest.files.find((f) => f.path === 'bin/backup.sh')?.mode).toBe(0o755);
    expect(r.manifest.envPatch).toEqual({ IMAGE_TAG: 'v2.10.3', DOMAIN: 'linda.cmlite.org' });
    expect(r.manifest.requiredVariables).toEqual(['APP_SECRET', 'DOMAIN']);
  });
});

describe('the repository templates and fleet', () => {
  it('render every tenant, each compose following its own image tag and every required variable covered', async () => {
    const fleet = await loadFleet(repoRoot);
    const rendered = renderFleet(fleet, await loadTemplates(`${repoRoot}templates`), SOURCE);
    expect(rendered.map((r) => r.slug)).toEqual(fleet.tenants.map((t) => t.slug));
    for (const r of rendered) {
      const tenant = fleet.tenants.find((t) => t.slug === r.slug)!;
      const compose = fileOf(r, 'docker-compose.yml');
      expect(compose).toContain(`:\${IMAGE_TAG:-${tenant.imageTag}}`);
      expect(parseYaml(compose)).toHaveProperty('services.api');
      expect(r.manifest.envPatch.IMAGE_TAG).toBe(tenant.imageTag);
      expect(r.manifest.envPatch.DOMAIN).toBe(tenant.domain);
      const defined = new Set([...Object.keys(r.manifest.envPatch), ...r.manifest.secrets, ...tenant.hostEnv]);
      expect(r.manifest.requiredVariables.filter((v) => !defined.has(v)), `uncovered in ${r.slug}`).toEqual([]);
      for (const path of ['nginx/conf.d/default.conf', 'nginx/conf.d/api.conf', 'nginx/conf.d/services.conf', 'configs/prometheus/prometheus.yml', 'configs/pangolin/resources.yml'])
        expect(fileOf(r, path).startsWith(`${HEADER_PREFIX}${r.slug} `)).toBe(true);
      expect(parseYaml(fileOf(r, 'configs/pangolin/resources.yml'))).toHaveProperty('resources');
    }
    const linda = rendered.find((r) => r.slug === 'linda');
    expect(linda?.manifest.imageTag).not.toBe(fleet.defaults.imageTag);
    expect(rendered.find((r) => r.paused)).toBeDefined();
  });

  it('renders the same bytes every time', async () => {
    const once = async () => renderFleet(await loadFleet(repoRoot), await loadTemplates(`${repoRoot}templates`), SOURCE);
    const [a, b] = [await once(), await once()];
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it("carries a tenant's maintenance windows to the agent in the manifest, and only when it has some", async () => {
    const fleet = await loadFleet(repoRoot);
    const templates = await loadTemplates(`${repoRoot}templates`);
    const pia = fleet.tenants.find((t) => t.slug === 'pia')!;
    const windowed = renderTenant(fleet, { ...pia, windows: ['Sun 02:00-05:00 Europe/Berlin'] }, templates, SOURCE);
    const manifestText = windowed.files.find((f) => f.path === MANIFEST_PATH)!.content;
    expect(parseManifest(manifestText).windows).toEqual(['Sun 02:00-05:00 Europe/Berlin']);
    const plain = renderTenant(fleet, { ...pia, windows: [] }, templates, SOURCE);
    expect(plain.files.find((f) => f.path === MANIFEST_PATH)!.content).not.toContain('windows');
    expect(() => parseManifest(manifestText.replace('Sun 02:00-05:00', 'Sun 2-5'))).toThrow(/manifest: windows:/);
  });

  it('renders only the tenants asked for and refuses unknown ones', async () => {
    const fleet = await loadFleet(repoRoot);
    const templates = await loadTemplates(`${repoRoot}templates`);
    expect(renderFleet(fleet, templates, SOURCE, { tenants: ['pia', 'linda'] }).map((r) => r.slug)).toEqual(['linda', 'pia']);
    expect(() => renderFleet(fleet, templates, SOURCE, { tenants: ['lindaa'] })).toThrow('--tenant: no tenant "lindaa"');
  });
});
