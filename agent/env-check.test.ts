import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ComposeFileError, EnvFileError } from '../renderer/core/errors.js';
import { envCheck, formatEnvCheck } from './env-check.js';

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
    const result = await envCheck(composePath, envPath);
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
    const result = await envCheck(composePath, envPath);
    expect(result.missing).toEqual([]);
    expect(JSON.parse(formatEnvCheck(result, true))).toEqual(result);
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
