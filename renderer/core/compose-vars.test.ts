import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ComposeFileError, EnvFileError } from './errors.js';
import {
  InvalidInterpolationError,
  MissingRequiredVariableError,
  evaluateComposeText,
  interpolate,
  missingVariables,
  scanComposeText,
  scanInterpolation,
} from './compose-vars.js';
import { composeEnvironment } from './compose-env.js';

// Vectors transcribed from compose-go, docker/compose and the compose spec (see the
// README beside them). Kept in the repo under test/conformance/; the shared copy is
// the fallback while working in the shared tree.
function loadConformance<T>(name: string): T {
  const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const candidates = [join(repoRoot, 'test', 'conformance', name), join('/work/shared/conformance', name)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`conformance data ${name} not found in ${candidates.join(' or ')}`);
  return JSON.parse(readFileSync(found, 'utf8')) as T;
}

interface InterpolationCase {
  name: string;
  template: string;
  env: Record<string, string>;
  expected?: string;
  error?: boolean;
  error_contains?: string;
  error_message_upstream?: string;
  references: string[];
  required: string[];
  unset_warnings: string[];
  ambiguous?: boolean;
  conditionally_required?: string[];
  message_only_references?: string[];
}

interface ComposeFileCase {
  name: string;
  yaml: string;
  env: Record<string, string>;
  references: string[];
  required: string[];
  missing: string[];
}

const sortedUnique = (names: string[]): string[] => [...new Set(names)].sort();

const interpolationCases = loadConformance<InterpolationCase[]>('compose-interpolation.json');
const composeFileCases = loadConformance<ComposeFileCase[]>('compose-files.json');

/** A syntax error compose reports as "Invalid template" / "invalid interpolation format". */
const isSyntaxError = (c: InterpolationCase): boolean =>
  c.error === true &&
  ((c.error_contains ?? '').includes('Invalid template') ||
    (c.error_message_upstream ?? '').includes('invalid interpolation format'));

/**
 * Cases marked `ambiguous` were derived with the reading "a name inside a default is
 * conditionally required". Flotilla's reading is that it is referenced, not required,
 * so those are treated leniently: the names listed as conditionally required or as
 * message-only references are dropped from the expected `required`; every other field
 * (references, expected value, error, warnings) is checked as written.
 */
function expectedRequired(c: InterpolationCase): string[] {
  if (!c.ambiguous) return sortedUnique(c.required);
  const lenient = new Set([...(c.conditionally_required ?? []), ...(c.message_only_references ?? [])]);
  return sortedUnique(c.required.filter((n) => !lenient.has(n)));
}

describe('conformance: compose-interpolation.json', () => {
  it('holds the 167 vectors the README lists', () => {
    expect(interpolationCases).toHaveLength(167);
  });

  describe.each(interpolationCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    if (isSyntaxError(c)) {
      it('is rejected by the scanner and the interpolator', () => {
        expect(() => scanInterpolation(c.template)).toThrow(InvalidInterpolationError);
        expect(() => interpolate(c.template, c.env)).toThrow(InvalidInterpolationError);
      });
      return;
    }

    it('scans references and required names', () => {
      const scan = scanInterpolation(c.template);
      expect(scan.references).toEqual(sortedUnique(c.references));
      expect(scan.required).toEqual(expectedRequired(c));
    });

    if (c.error) {
      it('fails to interpolate with the missing variable named', () => {
        let thrown: unknown;
        try {
          interpolate(c.template, c.env);
        } catch (e) {
          thrown = e;
        }
        expect(thrown).toBeInstanceOf(MissingRequiredVariableError);
        expect((thrown as Error).message).toContain(c.error_contains);
      });
    } else {
      it('interpolates to the expected value, warning about the same unset names', () => {
        const warned: string[] = [];
        expect(interpolate(c.template, c.env, (n) => warned.push(n))).toBe(c.expected);
        expect(sortedUnique(warned)).toEqual(sortedUnique(c.unset_warnings));
      });
    }
  });
});

describe('conformance: compose-files.json', () => {
  it('holds the 17 documents the README lists', () => {
    expect(composeFileCases).toHaveLength(17);
  });

  it.each(composeFileCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const scan = scanComposeText(c.yaml, 'compose.yaml');
    expect(scan.references).toEqual(sortedUnique(c.references));
    expect(scan.required).toEqual(sortedUnique(c.required));
    expect(missingVariables(scan.required, Object.keys(c.env))).toEqual(sortedUnique(c.missing));
    expect(evaluateComposeText(c.yaml, 'compose.yaml', c.env).missing).toEqual(sortedUnique(c.missing));
  });
});

interface TemplateTestFile {
  source: { repo: string; path: string; commit: string };
  env: Record<string, string>;
  cases: {
    test: string;
    template: string;
    expected?: string;
    error?: 'missing-required' | 'invalid-template';
    error_contains?: string;
    missing?: string[];
  }[];
}

const templateTests = loadConformance<TemplateTestFile>('compose-go-template.json');

/** One value as a whole compose document: JSON is YAML, and keeps the value byte for byte. */
const composeWith = (value: string): string => JSON.stringify({ services: { app: { image: value } } });

describe('conformance: compose-go-template.json (template/template_test.go)', () => {
  it('names its source and holds every Substitute call transcribed', () => {
    expect(templateTests.source).toEqual({
      repo: 'compose-spec/compose-go',
      path: 'template/template_test.go',
      commit: 'efea3ec07dadd6792105978301f4bff97a613825',
    });
    expect(templateTests.cases).toHaveLength(62);
  });

  const { env } = templateTests;
  describe.each(templateTests.cases.map((c, i) => [`${c.test} ${i}: ${c.template}`, c] as const))('%s', (_name, c) => {
    if (c.error === 'invalid-template') {
      it('is an invalid template', () => {
        expect(() => interpolate(c.template, env)).toThrow(InvalidInterpolationError);
        expect(() => evaluateComposeText(composeWith(c.template), 'compose.yaml', env)).toThrow(ComposeFileError);
      });
      return;
    }
    if (c.error === 'missing-required') {
      it('stops with the required variable named', () => {
        expect(() => interpolate(c.template, env)).toThrow(MissingRequiredVariableError);
        expect(() => interpolate(c.template, env)).toThrow(c.error_contains);
      });
    } else {
      it('substitutes the expected value', () => {
        expect(interpolate(c.template, env)).toBe(c.expected);
      });
    }
    it('finds missing exactly the names compose warns about or stops on', () => {
      expect(evaluateComposeText(composeWith(c.template), 'compose.yaml', env).missing).toEqual(c.missing);
    });
  });
});

describe('evaluateComposeText', () => {
  const evaluate = (value: string, env: Record<string, string>) =>
    evaluateComposeText(composeWith(value), 'compose.yaml', env);

  // frappe_docker's pwd.yml and documenso's compose file, where a static scan finds nothing required.
  const FRAPPE = '${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}';
  const DOCUMENSO = '${NEXT_PRIVATE_INTERNAL_WEBAPP_URL:-http://localhost:$PORT}';

  it('finds the name inside a default compose falls back to (frappe)', () => {
    expect(scanInterpolation(FRAPPE).required).toEqual([]);
    expect(interpolate(FRAPPE, {})).toBe('frappe/erpnext:');
    expect(evaluate(FRAPPE, {})).toEqual({ unset: ['ERPNEXT_VERSION'], requiredMissing: [], missing: ['ERPNEXT_VERSION'] });
    expect(evaluate(FRAPPE, { CUSTOM_TAG: '' }).missing).toEqual(['ERPNEXT_VERSION']);
    expect(evaluate(FRAPPE, { CUSTOM_TAG: 'v15.1.0' }).missing).toEqual([]);
    expect(evaluate(FRAPPE, { ERPNEXT_VERSION: 'v15.1.0' }).missing).toEqual([]);
  });

  it('finds the name inside a URL default (documenso)', () => {
    expect(interpolate(DOCUMENSO, {})).toBe('http://localhost:');
    expect(evaluate(DOCUMENSO, {}).missing).toEqual(['PORT']);
    expect(evaluate(DOCUMENSO, { NEXT_PRIVATE_INTERNAL_WEBAPP_URL: 'http://web:3000' }).missing).toEqual([]);
    // Empty is set: compose substitutes it without a warning.
    expect(evaluate(DOCUMENSO, { PORT: '' }).missing).toEqual([]);
  });

  it.each([
    ['${A:-$B}', {}, ['B']],
    ['${A:-$B}', { A: '' }, ['B']],
    ['${A:-$B}', { A: 'a' }, []],
    ['${A-$B}', {}, ['B']],
    ['${A-$B}', { A: '' }, []],
    ['${A:+${B}}', {}, []],
    ['${A:+${B}}', { A: '' }, []],
    ['${A:+${B}}', { A: 'a' }, ['B']],
    ['${A+${B}}', {}, []],
    ['${A+${B}}', { A: '' }, ['B']],
    ['${A:?msg}', { A: '' }, ['A']],
    ['${A:?msg}', {}, ['A']],
    ['${A?msg}', { A: '' }, []],
    ['${A?msg}', {}, ['A']],
    ['${A:?needs $B}', {}, ['A', 'B']],
    ['${A:?needs $B}', { A: 'a' }, []],
    ['$$B ${A:-$$B}', {}, []],
    ['${A:?} ${C:?} $D', { D: 'd' }, ['A', 'C']],
  ] as [string, Record<string, string>, string[]][])('%s with %j is missing %j', (value, env, missing) => {
    expect(evaluate(value, env).missing).toEqual(missing);
  });

  it('splits blanked names from required ones compose stops on', () => {
    expect(evaluate('${A:?set A} $B ${C:-$D}', { C: '' })).toEqual({
      unset: ['B', 'D'],
      requiredMissing: ['A'],
      missing: ['A', 'B', 'D'],
    });
  });

  it('names the YAML path of an invalid expression', () => {
    expect(() => evaluate('${A:=x}', {})).toThrow('compose.yaml: services.app.image: invalid interpolation format');
  });
});

describe('composeEnvironment', () => {
  it('takes the last assignment of a key', () => {
    const { env } = composeEnvironment('A=1\nA=\n', '.env', {});
    expect(env).toEqual({ A: '' });
    expect(evaluateComposeText(composeWith('${A:?set A}'), 'compose.yaml', env).missing).toEqual(['A']);
    expect(composeEnvironment('A=\nA=1\n', '.env', {}).env).toEqual({ A: '1' });
  });

  it('lets the process environment win over .env, as compose v2 does', () => {
    expect(composeEnvironment('HOME=/from-env-file\nTAG=v1\n', '.env', { HOME: '/root' }).env).toEqual({
      HOME: '/root',
      TAG: 'v1',
    });
  });

  it('expands .env values compose expands, against the process environment and earlier keys', () => {
    const text = 'BASE=x\nURL=http://$HOST:${BASE}\nQUOTED="$$lit \\$lit ${HOME}"\nRAW=\'$NOT_EXPANDED\'\nEMPTY=$UNSET_TOO\n';
    const { env, evaluation } = composeEnvironment(text, '.env', { HOME: '/root' });
    expect(evaluation).toEqual({ unset: ['HOST', 'UNSET_TOO'], requiredMissing: [], missing: ['HOST', 'UNSET_TOO'] });
    expect(env.URL).toBe('http://:x');
    expect(env.RAW).toBe('$NOT_EXPANDED');
    expect(env.EMPTY).toBe('');
    expect(env.QUOTED).not.toBe('');
  });

  it('names the line and key of a value compose cannot expand, never the value', () => {
    let thrown: unknown;
    try {
      composeEnvironment('A=1\nDB_PASSWORD="s3cr3t${"\n', '.env', {});
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(EnvFileError);
    expect((thrown as Error).message).toBe('.env:2: DB_PASSWORD: invalid interpolation format in the value; write a literal $ as $$');
  });

  it('reads a key named like an object property as a key', () => {
    const { env } = composeEnvironment('__proto__=x\nconstructor=\nB=$__proto__\n', '.env', {});
    expect(Object.keys(env).sort()).toEqual(['B', '__proto__', 'constructor']);
    expect(env.B).toBe('x');
  });

  it('reports a `:?` in .env that fails', () => {
    expect(composeEnvironment('A=\nB=${A:?need A}\n', '.env', {}).evaluation.requiredMissing).toEqual(['A']);
  });
});

describe('scanInterpolation', () => {
  it.each([
    ['$VAR', ['VAR'], ['VAR']],
    ['${VAR}', ['VAR'], ['VAR']],
    ['${VAR:?set VAR in .env}', ['VAR'], ['VAR']],
    ['${VAR?}', ['VAR'], ['VAR']],
    ['${VAR:-x}', ['VAR'], []],
    ['${VAR-x}', ['VAR'], []],
    ['${VAR:+x}', ['VAR'], []],
    ['${VAR+x}', ['VAR'], []],
    ['$$VAR and $${VAR}', [], []],
    ['${A:-${B}}', ['A', 'B'], []],
    ['${A:-$B}', ['A', 'B'], []],
    ['${A:?needs ${B} and $C}', ['A', 'B', 'C'], ['A']],
    ['${A:-${B:?}}', ['A', 'B'], []],
    ['$A-$B:${C:-x}/$A', ['A', 'B', 'C'], ['A', 'B']],
    ['${IMAGE:-nginx}:${TAG}', ['IMAGE', 'TAG'], ['TAG']],
    ['price: 5$ or $1 or $-', [], []],
  ])('%s references %j and requires %j', (value, references, required) => {
    expect(scanInterpolation(value)).toEqual({ references, required });
  });

  it.each(['${}', '${foo }', '${ foo}', '${FOO:=x}', '${FOO', 'x ${', '${FOO:x}', '${A:-${}}', '${A:-x\ny}'])(
    'rejects %j',
    (value) => {
      expect(() => scanInterpolation(value)).toThrow(InvalidInterpolationError);
    },
  );

  it('names the whole value in the error', () => {
    expect(() => scanInterpolation('postgres://${DB_USER:=app}@db')).toThrow(
      /"postgres:\/\/\$\{DB_USER:=app\}@db"/,
    );
  });

  it('reads a JSON default the way compose does', () => {
    expect(interpolate('${LABELS:-{"tier":"web"}}', {})).toBe('{"tier":"web"}');
    expect(scanInterpolation('${LABELS:-{"tier":"web"}} $NEXT')).toEqual({
      references: ['LABELS', 'NEXT'],
      required: ['NEXT'],
    });
  });
});

describe('interpolate', () => {
  it('treats an empty value as set for `-` and `?` but not for `:-` and `:?`', () => {
    const env = { EMPTY: '' };
    expect(interpolate('[${EMPTY-d}][${EMPTY:-d}][${EMPTY+p}][${EMPTY:+p}]', env)).toBe('[][d][p][]');
    expect(interpolate('[${EMPTY?m}]', env)).toBe('[]');
    expect(() => interpolate('${EMPTY:?set it}', env)).toThrow('required variable EMPTY is missing a value: set it');
  });

  it('evaluates a default only when it is used', () => {
    const warned: string[] = [];
    expect(interpolate('${A:-${B:?never}}', { A: 'a' }, (n) => warned.push(n))).toBe('a');
    expect(warned).toEqual([]);
  });

  it('does not mistake inherited object properties for variables', () => {
    expect(interpolate('[$constructor][${toString:-d}]', {})).toBe('[][d]');
  });
});

describe('scanComposeText', () => {
  const compose = [
    'x-common: &common',
    '  image: registry.example/app:${IMAGE_TAG:?set IMAGE_TAG}',
    'services:',
    '  api:',
    '    <<: *common',
    '    command: ["serve", "--port", "$PORT"]',
    '    environment:',
    '      DATABASE_URL: postgres://app:${POSTGRES_PASSWORD}@db/app',
    '      $KEY_IS_NOT_SCANNED: literal',
    '      LOG_LEVEL: ${LOG_LEVEL:-info}',
    '    ports:',
    '      - 8080',
    '    read_only: true',
    '    healthcheck:',
    '      test: wget -q -O- http://127.0.0.1:$$PORT/health',
  ].join('\n');

  it('scans every string value and no key, number or boolean', () => {
    expect(scanComposeText(compose, 'compose.yaml')).toEqual({
      references: ['IMAGE_TAG', 'LOG_LEVEL', 'PORT', 'POSTGRES_PASSWORD'],
      required: ['IMAGE_TAG', 'PORT', 'POSTGRES_PASSWORD'],
    });
  });

  it.each([
    ['environment map', { FOO: 'a ${FOO:=x}' }, 'services.api.environment.FOO'],
    ['command list', ['serve', '--port', '${}'], 'services.api.command[2]'],
  ])('names the YAML path of an invalid expression in a %s', (_what, value, path) => {
    const key = Array.isArray(value) ? 'command' : 'environment';
    const text = `services:\n  api:\n    image: app\n    ${key}: ${JSON.stringify(value)}\n`;
    let thrown: unknown;
    try {
      scanComposeText(text, 'tenant/compose.yaml');
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ComposeFileError);
    const err = thrown as ComposeFileError;
    expect(err.file).toBe('tenant/compose.yaml');
    expect(err.yamlPath).toBe(path);
    expect(err.message).toContain(`tenant/compose.yaml: ${path}: invalid interpolation format`);
  });

  it('reports a file that is not YAML with its name and line', () => {
    const text = 'services:\n  api:\n    image: app\n   command: [unclosed\n';
    expect(() => scanComposeText(text, 'compose.yaml')).toThrow(ComposeFileError);
    expect(() => scanComposeText(text, 'compose.yaml')).toThrow(/^compose\.yaml: not valid YAML \(line \d+, column \d+\)/);
  });

  it('reports duplicate keys, as compose does', () => {
    expect(() => scanComposeText('services: {}\nservices: {}\n', 'compose.yaml')).toThrow(/line 2/);
  });

  it('refuses a top level that is not a mapping', () => {
    expect(() => scanComposeText('just some text $FOO', 'notes.txt')).toThrow(
      'notes.txt: the top level of a compose file must be a mapping',
    );
  });

  it("reads compose's own !reset and !override tags", () => {
    const text = 'services:\n  api:\n    image: app:${TAG}\n    ports: !reset []\n    environment: !override\n      URL: ${URL:?}\n';
    expect(scanComposeText(text, 'compose.yaml')).toEqual({ references: ['TAG', 'URL'], required: ['TAG', 'URL'] });
  });

  it('walks an aliased node once, so a billion-laughs file is scanned in its own size', () => {
    // Ten levels of ten aliases each would be 10^10 strings if expanded.
    const lines = ['x-l0: &l0 "${DEEP}"'];
    for (let i = 1; i <= 10; i++) lines.push(`x-l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(', ')}]`);
    lines.push('services:\n  api:\n    image: app\n    command: *l10');
    expect(scanComposeText(lines.join('\n'), 'compose.yaml')).toEqual({ references: ['DEEP'], required: ['DEEP'] });
  });

  it('accepts an empty file', () => {
    expect(scanComposeText('', 'compose.yaml')).toEqual({ references: [], required: [] });
  });
});

describe('missingVariables', () => {
  it('lists the required names not defined, sorted', () => {
    expect(missingVariables(['ZED', 'ALPHA', 'MID'], new Set(['MID']))).toEqual(['ALPHA', 'ZED']);
    expect(missingVariables(['A'], ['A'])).toEqual([]);
  });
});
