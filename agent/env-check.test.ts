import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ComposeFileError, EnvFileError } from '../renderer/core/errors.js';
import { patchEnvText } from '../renderer/core/env-file.js';
import { envCheck, formatEnvCheck, stackMissingVariables } from './env-check.js';

const COMPOSE = `services:
  api:
    image: registry.example/api:\${IMAGE_TAG:?set IMAGE_TAG}
    environment:
      DATABASE_URL: postgres://app:\${POSTGRES_PASSWORD}@db/app
      SMTP_HOST: \${SMTP_HOST:-mail.internal}
      SECRET_KEY: $SECRET_KEY
    command: ["sh", "-c", "echo $$HOME"]
`;

describe('envCheck', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-env-check-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function files(compose: string, env: string): Promise<[string, string]> {
    const composePath = join(dir, 'compose.yaml');
    const envPath = join(dir, '.env');
    await writeFile(composePath, compose);
    await writeFile(envPath, env);
    return [composePath, envPath];
  }

  it('lists references, required names and the required names the .env lacks', async () => {
    const [composePath, envPath] = await files(
      COMPOSE,
      '# host secrets\r\nexport IMAGE_TAG=v2.10.3\r\nSECRET_KEY=""\r\nSMTP_HOST=mail\r\n',
    );
    const result = await envCheck(composePath, envPath, {});
    expect(result).toEqual({
      references: ['IMAGE_TAG', 'POSTGRES_PASSWORD', 'SECRET_KEY', 'SMTP_HOST'],
      required: ['IMAGE_TAG', 'POSTGRES_PASSWORD', 'SECRET_KEY'],
      missing: ['POSTGRES_PASSWORD'],
    });
    expect(formatEnvCheck(result, true)).toBe(
      '{"references": ["IMAGE_TAG", "POSTGRES_PASSWORD", "SECRET_KEY", "SMTP_HOST"], ' +
        '"required": ["IMAGE_TAG", "POSTGRES_PASSWORD", "SECRET_KEY"], "missing": ["POSTGRES_PASSWORD"]}',
    );
  });

  it('finds nothing missing when the .env defines every required name', async () => {
    const [composePath, envPath] = await files(
      COMPOSE,
      'IMAGE_TAG=v1\nPOSTGRES_PASSWORD=\'pa$$word\'\nSECRET_KEY=k',
    );
    const result = await envCheck(composePath, envPath, {});
    expect(result.missing).toEqual([]);
    expect(JSON.parse(formatEnvCheck(result, true))).toEqual(result);
  });

  // Lines from frappe_docker (pwd.yml) and documenso's compose file: nothing in them is
  // required whatever the values, yet with these .env files compose blanks a name.
  const FRAPPE = 'services:\n  backend:\n    image: ${CUSTOM_IMAGE:-frappe/erpnext}:${CUSTOM_TAG:-$ERPNEXT_VERSION}\n';
  const DOCUMENSO =
    'services:\n  documenso:\n    environment:\n      - NEXT_PRIVATE_INTERNAL_WEBAPP_URL=${NEXT_PRIVATE_INTERNAL_WEBAPP_URL:-http://localhost:$PORT}\n';

  it('finds missing the name inside a default compose falls back to (frappe, empty .env)', async () => {
    const [composePath, envPath] = await files(FRAPPE, '');
    const result = await envCheck(composePath, envPath, {});
    expect(result).toEqual({ references: ['CUSTOM_IMAGE', 'CUSTOM_TAG', 'ERPNEXT_VERSION'], required: [], missing: ['ERPNEXT_VERSION'] });
    expect(formatEnvCheck(result, true)).toBe(
      '{"references": ["CUSTOM_IMAGE", "CUSTOM_TAG", "ERPNEXT_VERSION"], "required": [], "missing": ["ERPNEXT_VERSION"]}',
    );
  });

  it('finds nothing missing once the default is not used or its name is set (frappe)', async () => {
    for (const env of ['CUSTOM_TAG=v15.2.0\n', 'ERPNEXT_VERSION=v15.2.0\n']) {
      const [composePath, envPath] = await files(FRAPPE, env);
      expect((await envCheck(composePath, envPath, {})).missing).toEqual([]);
    }
  });

  it('finds PORT missing in documenso\'s URL default until the URL or PORT is set', async () => {
    const [composePath, envPath] = await files(DOCUMENSO, '# nothing yet\n');
    expect((await envCheck(composePath, envPath, {})).missing).toEqual(['PORT']);
    await writeFile(envPath, 'NEXT_PRIVATE_INTERNAL_WEBAPP_URL=http://documenso:3000\n');
    expect((await envCheck(composePath, envPath, {})).missing).toEqual([]);
    await writeFile(envPath, 'PORT=3000\n');
    expect((await envCheck(composePath, envPath, {})).missing).toEqual([]);
  });

  it('reads the last assignment of a key, and `:?` refuses an empty value where `?` does not', async () => {
    const compose = 'services:\n  api:\n    image: app:${TAG:?set TAG}\n    command: ["${MODE?set MODE}"]\n';
    const [composePath, envPath] = await files(compose, 'TAG=1\nMODE=\nTAG=\n');
    const result = await envCheck(composePath, envPath, {});
    expect(result.required).toEqual(['MODE', 'TAG']);
    expect(result.missing).toEqual(['TAG']);
  });

  it('takes values from the environment compose runs with, allow-listed, over .env', async () => {
    const compose = 'services:\n  api:\n    image: app\n    volumes: ["${HOME}/data:/data", "${TOKEN}:/t"]\n';
    const [composePath, envPath] = await files(compose, 'HOME=\n');
    const result = await envCheck(composePath, envPath, { HOME: '/home/ops', TOKEN: 'agent-only' });
    expect(result.missing).toEqual(['TOKEN']);
  });

  it('names the compose file and YAML path of an invalid expression', async () => {
    const [composePath, envPath] = await files('services:\n  api:\n    image: app:${TAG:=latest}\n', '');
    const err = await envCheck(composePath, envPath).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComposeFileError);
    expect((err as Error).message).toContain(`${composePath}: services.api.image: invalid interpolation format`);
  });

  it('names a compose file that is not YAML, with the line', async () => {
    const [composePath, envPath] = await files('services:\n  api: [\n', '');
    await expect(envCheck(composePath, envPath)).rejects.toThrow(
      new RegExp(`^${composePath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid YAML \\(line \\d+`),
    );
  });

  it('names a file that cannot be read', async () => {
    const [composePath] = await files(COMPOSE, '');
    const missingEnv = join(dir, 'no-such.env');
    const err = await envCheck(composePath, missingEnv).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnvFileError);
    expect((err as Error).message).toContain(missingEnv);
    await expect(envCheck(join(dir, 'nope.yaml'), missingEnv)).rejects.toThrow(ComposeFileError);
  });
});

describe('stackMissingVariables', () => {
  it('reads the compose file compose would pick from a tree, and none when there is none', () => {
    const tree = new Map<string, string>([
      ['compose.yaml', 'services:\n  a:\n    image: ${IMAGE:-app}:${TAG}\n'],
      ['docker-compose.yml', 'services:\n  a:\n    image: $OTHER\n'],
      ['nginx/site.conf', 'server { root $document_root; }\n'],
    ]);
    expect(stackMissingVariables(tree, 'IMAGE=\n', {})).toEqual(['TAG']);
    tree.delete('compose.yaml');
    expect(stackMissingVariables(tree, '', {})).toEqual(['OTHER']);
    tree.delete('docker-compose.yml');
    expect(stackMissingVariables(tree, '', {})).toBeUndefined();
  });

  it('reads the .env as the host compose does: a value the patcher wrote for compose v1 names no variable there', () => {
    // `\\$HOME` written for docker-compose v1 (python-dotenv expands only ${...}): compose-go would read a $HOME in it.
    const envText = patchEnvText('', { GREETING: '\\\\$HOME' }, '.env', 'v1').text;
    const tree = new Map([['docker-compose.yml', 'services:\n  a:\n    image: app\n    environment:\n      G: ${GREETING}\n']]);
    expect(stackMissingVariables(tree, envText, {}, 'v1')).toEqual([]);
    expect(stackMissingVariables(tree, envText, {}, 'v2')).toEqual(['HOME']);
    // The shell compose runs in counts on v1 too.
    expect(stackMissingVariables(tree, '', {}, 'v1')).toEqual(['GREETING']);
    expect(stackMissingVariables(tree, '', { GREETING: 'hi' }, 'v1')).toEqual([]);
  });
});

describe('formatEnvCheck', () => {
  it('prints empty lists as [] in JSON and (none) for a person', () => {
    const empty = { references: [], required: [], missing: [] };
    expect(formatEnvCheck(empty, true)).toBe('{"references": [], "required": [], "missing": []}');
    expect(formatEnvCheck(empty, false)).toBe('references: (none)\nrequired:   (none)\nmissing:    (none)');
  });

  it('sorts and de-duplicates whatever it is given', () => {
    const result = { references: ['B', 'A', 'B'], required: ['B', 'A'], missing: ['B'] };
    expect(formatEnvCheck(result, true)).toBe('{"references": ["A", "B"], "required": ["A", "B"], "missing": ["B"]}');
    expect(formatEnvCheck(result, false)).toBe('references: A B\nrequired:   A B\nmissing:    B');
  });
});
