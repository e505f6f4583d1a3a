import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { FleetConfigError, type ConfigProblem } from '../core/errors.js';
import { loadFleet, loadFleetFromFiles } from './fleet.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const FLEET = `defaults:
  imageTag: v2.10.3
  registry: 127.0.0.1:5000/flotilla
  images:
    api: changemaker-api
  domainSuffix: fleet.example.org
  secrets: [POSTGRES_PASSWORD]
  features:
    monitoring: true
waves:
  - name: canary
    tenants: [linda]
`;

function problemsOf(files: Record<string, string>): ConfigProblem[] {
  try {
    loadFleetFromFiles(new Map(Object.entries({ 'fleet/fleet.yaml': FLEET, ...files })));
  } catch (e) {
    expect(e).toBeInstanceOf(FleetConfigError);
    return (e as FleetConfigError).problems;
  }
  throw new Error('expected a FleetConfigError');
}

function messageOf(files: Record<string, string>): string {
  try {
    loadFleetFromFiles(new Map(Object.entries({ 'fleet/fleet.yaml': FLEET, ...files })));
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('loadFleetFromFiles', () => {
  it('resolves tenants against the fleet defaults', () => {
    const fleet = loadFleetFromFiles(
      new Map([
        ['fleet/fleet.yaml', FLEET],
        ['fleet/tenants/linda.yaml', 'mode: adopted\nimageTag: v2.9.7\nenv:\n  SMTP_PORT: 25\n'],
        ['fleet/tenants/pia.yaml', 'domain: pia.cmlite.org\nmode: managed\nsecrets: [NEWT_SECRET]\npaused: true\n'],
      ]),
    );
    expect(fleet.tenants.map((t) => [t.slug, t.domain, t.imageTag, t.imageTagPinned, t.paused])).toEqual([
      ['linda', 'linda.fleet.example.org', 'v2.9.7', true, false],
      ['pia', 'pia.cmlite.org', 'v2.10.3', false, true],
    ]);
    expect(fleet.tenants[0]!.env).toEqual({ SMTP_PORT: '25' });
    expect(fleet.tenants[1]!.secrets).toEqual(['POSTGRES_PASSWORD', 'NEWT_SECRET']);
    expect(fleet.tenants[0]!.features).toEqual({ monitoring: true });
    expect(fleet.waves).toEqual([{ name: 'canary', tenants: ['linda'] }]);
  });

  it('names file and line for YAML that does not parse', () => {
    const [p, ...rest] = problemsOf({ 'fleet/tenants/linda.yaml': 'mode: managed\nenv:\n\tSMTP_HOST: a\nlabels: {}\n' });
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ file: 'fleet/tenants/linda.yaml', line: 3 });
    expect(p!.message).toMatch(/^invalid YAML: /);
  });

  it('names the key path and line of a duplicate key', () => {
    const problems = problemsOf({
      'fleet/tenants/linda.yaml': 'mode: managed\nenv:\n  SMTP_HOST: a\n  SMTP_HOST: b\n',
    });
    expect(problems).toEqual([
      { file: 'fleet/tenants/linda.yaml', keyPath: 'env.SMTP_HOST', line: 4, message: expect.stringMatching(/duplicate key "SMTP_HOST"/) },
    ]);
  });

  it('names an unknown key with its path and line, and lists the allowed keys', () => {
    const problems = problemsOf({ 'fleet/tenants/linda.yaml': 'mode: managed\nimagetag: v1\n' });
    expect(problems).toEqual([
      { file: 'fleet/tenants/linda.yaml', keyPath: 'imagetag', line: 2, message: expect.stringContaining('unknown key') },
    ]);
    expect(problems[0]!.message).toContain('imageTag');
    const nested = problemsOf({ 'fleet/fleet.yaml': FLEET.replace('  domainSuffix:', '  colour: blue\n  domainSuffix:') });
    expect(nested).toMatchObject([{ file: 'fleet/fleet.yaml', keyPath: 'defaults.colour', line: 6 }]);
  });

  it.each([
    ['invalid characters', 'v2.10.3+build', '"v2.10.3+build"'],
    ['empty', '""', '""'],
    ['129 characters', 'a'.repeat(129), '(129 characters)'],
    ['a leading dash', '"-rc1"', '"-rc1"'],
  ])('rejects an imageTag with %s, naming file, key and line', (_why, tag, shown) => {
    const problems = problemsOf({ 'fleet/tenants/linda.yaml': `mode: managed\nimageTag: ${tag}\n` });
    expect(problems).toEqual([
      { file: 'fleet/tenants/linda.yaml', keyPath: 'imageTag', line: 2, message: expect.stringContaining('is not a valid image tag') },
    ]);
    expect(problems[0]!.message).toContain(shown);
  });

  it("reads a tenant's adopt: replace, and refuses any other value naming file, key and line", () => {
    const fleet = loadFleetFromFiles(new Map([['fleet/fleet.yaml', FLEET], ['fleet/tenants/linda.yaml', 'mode: adopted\nadopt: replace\n']]));
    expect(fleet.tenants[0]!.adopt).toBe('replace');
    const problems = problemsOf({ 'fleet/tenants/linda.yaml': 'mode: adopted\nadopt: overwrite\n' });
    expect(problems).toMatchObject([{ file: 'fleet/tenants/linda.yaml', keyPath: 'adopt', line: 2 }]);
  });

  it('accepts a 128-character imageTag, the longest Docker allows', () => {
    const tag = `v${'1'.repeat(127)}`;
    const fleet = loadFleetFromFiles(
      new Map([
        ['fleet/fleet.yaml', FLEET],
        ['fleet/tenants/linda.yaml', `mode: managed\nimageTag: ${tag}\n`],
      ]),
    );
    expect(fleet.tenants[0]!.imageTag).toBe(tag);
  });

  it('rejects a bad default imageTag in fleet.yaml', () => {
    const problems = problemsOf({
      'fleet/fleet.yaml': FLEET.replace('imageTag: v2.10.3', 'imageTag: "latest!"'),
      'fleet/tenants/linda.yaml': 'mode: managed\n',
    });
    expect(problems).toMatchObject([{ file: 'fleet/fleet.yaml', keyPath: 'defaults.imageTag', line: 2 }]);
  });

  it('rejects a file name that is not a DNS label', () => {
    const problems = problemsOf({ 'fleet/tenants/Linda_2.yaml': 'mode: managed\n', 'fleet/tenants/linda.yaml': 'mode: managed\n' });
    expect(problems).toEqual([
      { file: 'fleet/tenants/Linda_2.yaml', keyPath: '', message: expect.stringContaining('"Linda_2" is not a valid tenant slug') },
    ]);
  });

  it('rejects a slug key that differs from the file name', () => {
    const problems = problemsOf({ 'fleet/tenants/linda.yaml': '# linda\nslug: lynda\nmode: managed\n' });
    expect(problems).toEqual([
      {
        file: 'fleet/tenants/linda.yaml',
        keyPath: 'slug',
        line: 2,
        message: expect.stringContaining('"lynda" does not match the file name (expected "linda"'),
      },
    ]);
  });

  it('names a wave entry that has no tenant file', () => {
    const problems = problemsOf({
      'fleet/fleet.yaml': FLEET.replace('tenants: [linda]', 'tenants: [linda, lindaa]'),
      'fleet/tenants/linda.yaml': 'mode: managed\n',
    });
    expect(problems).toEqual([
      { file: 'fleet/fleet.yaml', keyPath: 'waves[0].tenants[1]', line: 12, message: expect.stringContaining('unknown tenant "lindaa"') },
    ]);
  });

  it('rejects a secret name in env and an undeclared feature flag', () => {
    const problems = problemsOf({
      'fleet/tenants/linda.yaml': 'mode: managed\nenv:\n  POSTGRES_PASSWORD: hunter2\nfeatures:\n  monitorng: false\n',
    });
    expect(problems).toEqual([
      { file: 'fleet/tenants/linda.yaml', keyPath: 'env.POSTGRES_PASSWORD', line: 3, message: expect.stringContaining('never committed') },
      { file: 'fleet/tenants/linda.yaml', keyPath: 'features.monitorng', line: 5, message: expect.stringContaining('unknown feature flag') },
    ]);
  });

  it('lists every problem across every file in one error', () => {
    const message = messageOf({
      'fleet/tenants/linda.yaml': 'mode: manged\n',
      'fleet/tenants/pia.yaml': 'mode: managed\nmode: adopted\n',
      'fleet/tenants/soroush.yaml': 'mode: managed\nimageTag: ""\ncolour: red\n',
    });
    expect(message.split('\n')).toEqual([
      'fleet/tenants/linda.yaml:1: mode: must be one of managed, adopted, not string "manged"',
      'fleet/tenants/pia.yaml:2: mode: duplicate key "mode": each key may appear once',
      expect.stringMatching(/^fleet\/tenants\/soroush\.yaml:3: colour: unknown key/),
      expect.stringMatching(/^fleet\/tenants\/soroush\.yaml:2: imageTag: "" is not a valid image tag/),
    ]);
  });

  it('reports a missing fleet.yaml and a missing required key', () => {
    expect(() => loadFleetFromFiles(new Map([['fleet/tenants/linda.yaml', 'mode: managed\n']]))).toThrow(
      'fleet/fleet.yaml: file is missing',
    );
    expect(problemsOf({ 'fleet/tenants/linda.yaml': 'domain: linda.example.org\n' })).toMatchObject([
      { file: 'fleet/tenants/linda.yaml', keyPath: 'mode', message: 'is required but missing' },
    ]);
  });
});

describe('the repository fleet', () => {
  it('is valid and has tenants in both modes, one pinned and one paused', async () => {
    const fleet = await loadFleet(repoRoot);
    expect(fleet.tenants.length).toBeGreaterThanOrEqual(4);
    expect(new Set(fleet.tenants.map((t) => t.mode))).toEqual(new Set(['managed', 'adopted']));
    expect(fleet.tenants.some((t) => t.imageTagPinned && t.imageTag !== fleet.defaults.imageTag)).toBe(true);
    expect(fleet.tenants.some((t) => t.paused)).toBe(true);
    for (const wave of fleet.waves) expect(wave.tenants.length).toBeGreaterThan(0);
  });
});
