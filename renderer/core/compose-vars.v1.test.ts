// interpolateV1 against the real docker-compose v1 (Debian's 1.29, which scripts/test.sh
// installs): every template of compose-go's own template tests, with the same values,
// run through `docker-compose config`. The value, the "variable is not set" warnings, and
// whether v1 stops (a missing mandatory value, an invalid format) must be v1's exactly.
// No docker-compose on the machine is a failure, not a skip.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import vectors from '../../test/conformance/compose-go-template.json' with { type: 'json' };
import { evaluateComposeText, interpolateV1 } from './compose-vars.js';
import { InvalidInterpolationError, MissingRequiredVariableError } from './compose-vars.js';

const execFileAsync = promisify(execFile);
const DOCKER_COMPOSE = '/usr/bin/docker-compose';

interface V1Answer {
  value?: string;
  unset: string[];
  error?: 'missing-required' | 'invalid-template';
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'flotilla-compose-v1-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const envText = Object.entries(vectors.env)
  .map(([k, v]) => `${k}=${v}\n`)
  .join('');

/** What docker-compose v1 makes of one value, given the vectors' .env and nothing else in its environment. */
async function v1Reads(template: string, i: number): Promise<V1Answer> {
  const dir = join(work, String(i));
  await execFileAsync('mkdir', ['-p', dir]);
  await writeFile(join(dir, '.env'), envText);
  await writeFile(join(dir, 'docker-compose.yml'), `services:\n  a:\n    image: busybox\n    environment:\n      X: ${JSON.stringify(template)}\n`);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await execFileAsync(DOCKER_COMPOSE, ['config'], { cwd: dir, env }));
  } catch (e) {
    stderr = (e as { stderr?: string }).stderr ?? '';
  }
  const unset = [...stderr.matchAll(/The (\S+) variable is not set\. Defaulting to a blank string\./g)].map((m) => m[1]!);
  if (/Missing mandatory value/.test(stderr)) return { unset, error: 'missing-required' };
  if (/Invalid interpolation format/.test(stderr)) return { unset, error: 'invalid-template' };
  const loaded = yaml.load(stdout) as { services: { a: { environment: Record<string, string> } } };
  // `config` writes a literal $ as $$.
  return { unset, value: String(loaded.services.a.environment.X).replace(/\$\$/g, '$') };
}

function ours(template: string): V1Answer {
  const unset: string[] = [];
  try {
    return { unset, value: interpolateV1(template, vectors.env, (name) => unset.push(name)) };
  } catch (e) {
    if (e instanceof MissingRequiredVariableError) return { unset, error: 'missing-required' };
    if (e instanceof InvalidInterpolationError) return { unset, error: 'invalid-template' };
    throw e;
  }
}

describe('interpolateV1 is docker-compose v1', () => {
  it('has docker-compose v1 to compare with', async () => {
    expect(existsSync(DOCKER_COMPOSE), `${DOCKER_COMPOSE} is missing: scripts/test.sh installs Debian's docker-compose`).toBe(true);
    expect((await execFileAsync(DOCKER_COMPOSE, ['version', '--short'])).stdout).toMatch(/^1\./);
  });

  it('gives v1’s value, warnings and stops for every template of compose-go’s tests', async () => {
    const templates = [...new Set(vectors.cases.map((c) => c.template))].filter((t) => !t.includes('\n'));
    expect(templates.length).toBeGreaterThan(40);
    const answers: V1Answer[] = new Array(templates.length);
    // Four at a time: each is a python start.
    for (let at = 0; at < templates.length; at += 4)
      await Promise.all(templates.slice(at, at + 4).map(async (t, k) => void (answers[at + k] = await v1Reads(t, at + k))));
    const differing = templates.filter((t, i) => JSON.stringify(ours(t)) !== JSON.stringify(answers[i]));
    expect(differing.map((t) => ({ template: t, v1: answers[templates.indexOf(t)], ours: ours(t) }))).toEqual([]);
    // Where the two composes part ways, this is what a v1 host does.
    expect(ours('${UNSET:-$FOO}')).toEqual({ unset: [], value: '$FOO' });
    expect(ours('${BAR:+x}')).toEqual({ unset: [], error: 'invalid-template' });
  }, 120_000);

  it('needs no name inside a default on a v1 host, where compose-go does (the frappe line)', () => {
    const compose = 'services:\n  a:\n    image: ${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}\n';
    expect(evaluateComposeText(compose, 'docker-compose.yml', {}, 'v1').missing).toEqual([]);
    expect(evaluateComposeText(compose, 'docker-compose.yml', {}, 'v2').missing).toEqual(['ERPNEXT_VERSION']);
  });
});
