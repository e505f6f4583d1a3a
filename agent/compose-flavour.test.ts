import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SettingError } from '../renderer/core/errors.js';
import { composeFlavour } from './compose-flavour.js';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('composeFlavour', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-flavour-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is v1 for the real docker-compose 1.29 (installed by scripts/test.sh)', async () => {
    expect(existsSync('/usr/bin/docker-compose'), '/usr/bin/docker-compose is missing: install the docker-compose package').toBe(true);
    expect(await composeFlavour(['docker-compose'], env)).toBe('v1');
  });

  it.each([['2.29.1'], ['v2.40.0']])('is v2 for a compose that prints %s', async (version) => {
    // No compose v2 exists on the test machines: this stand-in prints what `docker compose version --short` prints.
    const standIn = join(dir, 'docker-compose');
    await writeFile(standIn, `#!/bin/sh\n[ "$1 $2" = "version --short" ] && echo ${version}\n`);
    await chmod(standIn, 0o755);
    expect(await composeFlavour([standIn], env)).toBe('v2');
  });

  it('refuses to guess when the command does not run', async () => {
    const err = await composeFlavour([join(dir, 'no-such-compose')], env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SettingError);
    expect((err as SettingError).setting).toBe('FLOTILLA_COMPOSE');
  });
});
