// Hooks from fleet.yaml to the manifest: declared in defaults or per tenant (a tenant's
// `hooks` replace the defaults' whole), validated with file, key and line, rendered into
// the manifest and read back by the agent's parseManifest.
import { describe, expect, it } from 'vitest';
import { FleetConfigError, ManifestError, type ConfigProblem } from '../core/errors.js';
import { MANIFEST_PATH, parseManifest, serializeManifest } from '../core/manifest.js';
import { loadFleetFromFiles } from './fleet.js';
import { compileTemplates, renderTenant } from '../render/render.js';

const FLEET = `defaults:
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: example.org
  hooks:
    preSwap:
      - name: pg-dump
        run: [sh, -c, 'compose exec -T postgres pg_dump -U app app > "$FLOTILLA_HOOK_OUTPUT_DIR/app-$(date +%Y%m%d%H%M%S).sql"']
        timeoutSeconds: 900
        keep: 7
    postUp:
      - name: migrate
        run: [compose, exec, -T, api, npm, run, migrate]
`;

function load(files: Record<string, string>, fleet = FLEET) {
  return loadFleetFromFiles(new Map(Object.entries({ 'fleet/fleet.yaml': fleet, ...files })));
}

function problemsOf(files: Record<string, string>, fleet = FLEET): ConfigProblem[] {
  try {
    load(files, fleet);
  } catch (e) {
    expect(e).toBeInstanceOf(FleetConfigError);
    return (e as FleetConfigError).problems;
  }
  throw new Error('expected a FleetConfigError');
}

describe('fleet hooks', () => {
  it('gives every tenant the default hooks unless its own file declares hooks, which replace them', () => {
    const fleet = load({
      'fleet/tenants/linda.yaml': 'mode: adopted\n',
      'fleet/tenants/pia.yaml': 'mode: managed\nhooks:\n  postUp:\n    - name: smoke\n      run: [compose, exec, -T, api, wget, -q, -O-, http://localhost/health]\n',
      'fleet/tenants/trbh.yaml': 'mode: managed\nhooks: {}\n',
    });
    const [linda, pia, trbh] = fleet.tenants;
    expect(linda!.hooks).toEqual({
      preSwap: [
        {
          name: 'pg-dump',
          run: ['sh', '-c', 'compose exec -T postgres pg_dump -U app app > "$FLOTILLA_HOOK_OUTPUT_DIR/app-$(date +%Y%m%d%H%M%S).sql"'],
          timeoutSeconds: 900,
          keep: 7,
        },
      ],
      postUp: [{ name: 'migrate', run: ['compose', 'exec', '-T', 'api', 'npm', 'run', 'migrate'] }],
    });
    expect(pia!.hooks).toEqual({ postUp: [{ name: 'smoke', run: ['compose', 'exec', '-T', 'api', 'wget', '-q', '-O-', 'http://localhost/health'] }] });
    // An empty mapping switches the defaults off for that tenant.
    expect(trbh!.hooks).toEqual({});
  });

  it('names file, key and line of a bad hook', () => {
    const problems = problemsOf({
      'fleet/tenants/linda.yaml': [
        'mode: adopted',
        'hooks:',
        '  preSwap:',
        '    - name: Dump',
        '      run: pg_dump app',
        '      keep: 0',
        '  afterUp: []',
        '',
      ].join('\n'),
    });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ file: 'fleet/tenants/linda.yaml', keyPath: 'hooks.preSwap[0].name', line: 4 }),
        expect.objectContaining({ file: 'fleet/tenants/linda.yaml', keyPath: 'hooks.preSwap[0].run', line: 5, message: expect.stringMatching(/must be array/) }),
        expect.objectContaining({ file: 'fleet/tenants/linda.yaml', keyPath: 'hooks.preSwap[0].keep', line: 6 }),
        expect.objectContaining({ file: 'fleet/tenants/linda.yaml', keyPath: 'hooks.afterUp', line: 7, message: expect.stringMatching(/unknown key \(allowed here: preSwap, postUp\)/) }),
      ]),
    );
  });

  it('refuses a hook name used twice across the phases, pointing at the second one', () => {
    const fleet = FLEET.replace('- name: migrate', '- name: pg-dump');
    const problems = problemsOf({ 'fleet/tenants/linda.yaml': 'mode: adopted\n' }, fleet);
    expect(problems).toEqual([
      {
        file: 'fleet/fleet.yaml',
        keyPath: 'defaults.hooks.postUp[0].name',
        line: 14,
        message: 'hook name "pg-dump" is already used by defaults.hooks.preSwap[0]; each hook needs its own name',
      },
    ]);
  });

  it('renders the hooks into the manifest, which the agent parses back unchanged', () => {
    const fleet = load({ 'fleet/tenants/linda.yaml': 'mode: adopted\n', 'fleet/tenants/pia.yaml': 'mode: managed\nhooks: {}\n' });
    const templates = compileTemplates(new Map([['docker-compose.yml.hbs', 'services:\n  api:\n    image: api\n']]));
    const source = { repo: 'http://127.0.0.1:9/fleet.git', commit: '3f786850e387550fdab836ed7e6dc881de23001b' };
    const linda = renderTenant(fleet, fleet.tenants[0]!, templates, source);
    const text = linda.files.find((f) => f.path === MANIFEST_PATH)!.content;
    expect(parseManifest(text).hooks).toEqual(fleet.tenants[0]!.hooks);
    expect(serializeManifest(parseManifest(text))).toBe(text);
    // No hooks: no key, so the manifest bytes of a fleet without hooks do not change.
    const pia = renderTenant(fleet, fleet.tenants[1]!, templates, source);
    expect(pia.manifest).not.toHaveProperty('hooks');
    expect(pia.files.find((f) => f.path === MANIFEST_PATH)!.content).not.toContain('hooks');
  });
});

describe('parseManifest hooks', () => {
  const base = {
    schemaVersion: 1,
    tenant: 'linda',
    mode: 'adopted',
    imageTag: 'v1',
    source: { repo: 'r', commit: 'c' },
    files: [],
    envPatch: {},
    requiredVariables: [],
    secrets: [],
  };
  const parse = (hooks: unknown) => parseManifest(JSON.stringify({ ...base, hooks }));

  it('accepts argv hooks and keeps only their known settings', () => {
    expect(parse({ preSwap: [{ name: 'dump', run: ['sh', '-c', 'true'], keep: 3 }] }).hooks).toEqual({
      preSwap: [{ name: 'dump', run: ['sh', '-c', 'true'], keep: 3 }],
    });
  });

  it.each([
    [{ preSwap: [{ name: 'dump', run: 'pg_dump app' }] }, /hooks.preSwap\[0\].run must be a non-empty argv list/],
    [{ preSwap: [{ name: 'dump', run: [] }] }, /non-empty argv list/],
    [{ postUp: [{ name: '../etc', run: ['true'] }] }, /hooks.postUp\[0\].name must match/],
    [{ preSwap: [{ name: 'a', run: ['true'] }], postUp: [{ name: 'a', run: ['true'] }] }, /hook name a is used twice/],
    [{ preSwap: [{ name: 'a', run: ['true'], env: { X: '1' } }] }, /hooks.preSwap\[0\].env is not a hook setting/],
    [{ preSwap: [{ name: 'a', run: ['true'], timeoutSeconds: 0 }] }, /timeoutSeconds must be an integer/],
    [{ during: [] }, /hooks.during is not a hook phase/],
    [['x'], /hooks must be an object/],
  ])('refuses %j', (hooks, message) => {
    expect(() => parse(hooks)).toThrow(ManifestError);
    expect(() => parse(hooks)).toThrow(message);
  });
});
