import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig, parseAgentConfig } from './config.js';
import { SettingError } from '../renderer/core/errors.js';

const base = {
  FLOTILLA_REPO: 'https://github.com/acme/fleet.git',
  FLOTILLA_TENANT: 'linda',
  FLOTILLA_DIR: '/srv/linda',
};

function settingOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof SettingError) return e.setting;
    throw e;
  }
  return undefined;
}

describe('agent settings', () => {
  it('fills defaults a fresh install expects', () => {
    const c = parseAgentConfig(base);
    expect(c.branch).toBe('tenants/linda');
    expect(c.githubRepo).toBe('acme/fleet');
    expect(c.githubApi).toBe('https://api.github.com');
    expect(c.drift).toBe('report');
    expect(c.compose).toBeUndefined();
    expect(c.stateDir).toBe('/var/lib/flotilla/linda');
  });

  it.each([
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: '' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'git@github.com:acme/fleet.git' }],
    ['FLOTILLA_TENANT', { ...base, FLOTILLA_TENANT: 'Linda_1' }],
    ['FLOTILLA_DIR', { ...base, FLOTILLA_DIR: 'relative/dir' }],
    ['FLOTILLA_DRIFT', { ...base, FLOTILLA_DRIFT: 'fix' }],
    ['FLOTILLA_HEALTH_TIMEOUT', { ...base, FLOTILLA_HEALTH_TIMEOUT: 'soon' }],
    ['FLOTILLA_GITHUB_REPO', { ...base, FLOTILLA_GITHUB_REPO: 'not a repo' }],
  ])('names %s when it is missing or invalid', (setting, vars) => {
    expect(settingOf(() => parseAgentConfig(vars))).toBe(setting);
  });

  it('never echoes credentials embedded in a bad repo URL', () => {
    expect(() => parseAgentConfig({ ...base, FLOTILLA_REPO: 'ssh://user:s3cret@host/x' })).toThrow(/\*\*\*/);
    expect(() => parseAgentConfig({ ...base, FLOTILLA_REPO: 'ssh://user:s3cret@host/x' })).not.toThrow(/s3cret/);
  });

  it('derives owner/name only from URLs that have that shape', () => {
    expect(parseAgentConfig({ ...base, FLOTILLA_REPO: 'http://127.0.0.1:4000/acme/fleet' }).githubRepo).toBe('acme/fleet');
    expect(parseAgentConfig({ ...base, FLOTILLA_REPO: 'http://127.0.0.1:4000/fleet.git' }).githubRepo).toBeUndefined();
  });

  it('reads the env file, lets the environment override it, and checks the install dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-config-'));
    try {
      const envFile = join(dir, 'agent.env');
      await writeFile(envFile, `FLOTILLA_REPO=http://127.0.0.1:1/acme/fleet\nFLOTILLA_TENANT=pia\nFLOTILLA_DIR=${dir}\n`);
      const c = await loadAgentConfig(envFile, { FLOTILLA_TENANT: 'linda' });
      expect(c.tenant).toBe('linda');
      expect(c.installDir).toBe(dir);
      await expect(loadAgentConfig(join(dir, 'missing.env'), {})).rejects.toThrow(/--env-file/);
      const unreadable = join(dir, 'nope');
      await expect(loadAgentConfig(envFile, { FLOTILLA_DIR: unreadable })).rejects.toThrow(/FLOTILLA_DIR/);
    } finally {
      await chmod(dir, 0o700);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
