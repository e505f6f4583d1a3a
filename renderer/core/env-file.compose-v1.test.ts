// The compose v1 side of the .env patcher, against the real docker-compose 1.29
// binary (Debian's package, which reads `.env` with python-dotenv 0.21).
// `docker-compose config` needs no engine: it prints the compose file with the
// `.env` values put in, which is exactly "what v1 reads". scripts/test.sh installs
// the package; without it these tests fail, they never skip.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEnvValue, patchEnvText, readEnvValues } from './env-file.js';
import { EnvFileError } from './errors.js';

const DOCKER_COMPOSE = '/usr/bin/docker-compose';
/** What `${K-...}` gives for a key the .env leaves undefined; no generated value holds it. */
const UNSET = '__flotilla_unset__';

/** Each key's value as docker-compose 1.29 reads `envText`; undefined when it defines none. */
function composeV1Reads(envText: string, keys: string[]): Map<string, string | undefined> {
  expect(existsSync(DOCKER_COMPOSE), `${DOCKER_COMPOSE} is missing: scripts/test.sh installs the docker-compose package`).toBe(true);
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-compose-v1-'));
  try {
    writeFileSync(join(dir, '.env'), envText);
    const environment = Object.fromEntries(keys.map((k) => [k, `\${${k}-${UNSET}}`]));
    // JSON is YAML; no hand-quoting of the references.
    writeFileSync(join(dir, 'docker-compose.yml'), JSON.stringify({ version: '3.9', services: { s: { image: 'busybox', environment } } }));
    const out = execFileSync(DOCKER_COMPOSE, ['config'], {
      cwd: dir,
      encoding: 'utf8',
      // Only PATH and HOME: a variable of the test's own shell must not stand in for a missing .env value.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Read back with docker-compose's own YAML library: PyYAML writes U+2028 as a YAML 1.1 line
    // break, which a YAML 1.2 reader (js-yaml) takes for text.
    const json = execFileSync('/usr/bin/python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], {
      input: out,
      encoding: 'utf8',
    });
    const config = JSON.parse(json) as { services: { s: { environment: Record<string, string> } } };
    const read = new Map<string, string | undefined>();
    for (const key of keys) {
      // `config` writes a literal `$` as `$$`, so its output can be read again.
      const value = String(config.services.s.environment[key]).replaceAll('$$', '$');
      read.set(key, value === UNSET ? undefined : value);
    }
    return read;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The characters python-dotenv and compose-go treat differently, and plain ones.
const CHARS = ['a', 'Z', '0', '_', ' ', '\t', '#', '=', ':', '-', "'", '"', '\\', '$', '{', '}', 'n', 'é', '😀', '\u00a0', '\u001c', '\u2028'];
const value = (maxLength: number) => fc.array(fc.constantFrom(...CHARS), { maxLength }).map((a) => a.join(''));

describe('compose v1 (docker-compose 1.29, python-dotenv 0.21) reading .env', () => {
  it('reads generated files exactly as readEnvValues(..., "v1") says', () => {
    const line = (key: string) =>
      fc
        .record({
          prefix: fc.constantFrom('', '', 'export ', '  '),
          separator: fc.constantFrom('=', '=', ' = ', '= '),
          quote: fc.constantFrom('', "'", '"'),
          body: value(8),
          trailing: fc.constantFrom('', '', ' # c', '  ', '#c'),
        })
        .map(({ prefix, separator, quote, body, trailing }) => `${prefix}${key}${separator}${quote}${body}${quote}${trailing}`);
    const keys = Array.from({ length: 30 }, (_, i) => `K${i}`);
    // A few whole files rather than many: each is one docker-compose run.
    const files = fc.sample(
      fc.tuple(...keys.map((k) => fc.oneof({ weight: 4, arbitrary: line(k) }, { weight: 1, arbitrary: fc.constantFrom('# note', '', `${k}`) }))),
      { numRuns: 5, seed: 13 },
    );
    for (const lines of files) {
      const text = `${lines.join('\n')}\n`;
      const model = readEnvValues(text, '.env', 'v1');
      const real = composeV1Reads(text, keys);
      expect(Object.fromEntries(keys.map((k) => [k, model.get(k)])), text).toEqual(Object.fromEntries(real));
    }
  });

  it('reads back every value the v1 patcher accepts, and the patcher refuses only what v1 cannot hold', () => {
    const values = fc.sample(value(10), { numRuns: 400, seed: 13 });
    values.push("it's $5 off", 'a\\\\b $x', ' x\\', 'p$ss', '${HOME}', 'a${X:-y}b', '${X:?e}', '$$', '$5', '\u001cx\u001c');
    const patch: Record<string, string> = {};
    values.forEach((v, i) => {
      try {
        encodeEnvValue(v, '', '.env', `N${i}`, undefined, 'v1');
        patch[`N${i}`] = v;
      } catch (err) {
        expect(err).toBeInstanceOf(EnvFileError);
        // Refused only when it holds `${...}` (v1 expands it in every form) or ends with `\` (which
        // runs a quoted value on to the next quote) where a bare value cannot hold it either.
        expect(/\$\{[^}:]*(?::-[^}]*)?\}/.test(v) || v.endsWith('\\'), JSON.stringify(v)).toBe(true);
        if (v.trim()) expect((err as EnvFileError).message).not.toContain(v);
      }
    });
    // Existing lines in each form are replaced too, an inline comment kept after the bare one.
    Object.assign(patch, { A: "it's $5 off", B: 'a\\\\b $x', C: '$x\\' });
    const patched = patchEnvText("A='old'\nB=\"old\"\nC=old # keep\n", patch, '.env', 'v1');
    expect(patched.text).toContain('C=$x\\ # keep\n');
    expect(Object.fromEntries(composeV1Reads(patched.text, Object.keys(patch)))).toEqual(patch);
    expect(Object.keys(patch).length).toBeGreaterThan(300);
  });
});
