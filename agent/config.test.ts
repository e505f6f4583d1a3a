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
    ['FLOTILLA_SCHEDULE', { ...base, FLOTILLA_SCHEDULE: 'every minute' }],
    ['FLOTILLA_SCHEDULE', { ...base, FLOTILLA_SCHEDULE: '61 * * * *' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'http://git.example.com/acme/fleet.git', FLOTILLA_GIT_TOKEN: 'tok' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'http://x:tok@10.0.0.5/acme/fleet.git' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'http://[::ffff:10.0.0.5]/acme/fleet.git', FLOTILLA_GIT_TOKEN: 'tok' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'http://localhost.example.com/acme/fleet.git', FLOTILLA_GIT_TOKEN: 'tok' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'https://github.com/acme/my fleet.git' }],
    ['FLOTILLA_REPO', { ...base, FLOTILLA_REPO: 'https://github.com/acme/\tfleet.git' }],
    ['FLOTILLA_GITHUB_API', { ...base, FLOTILLA_GITHUB_API: 'not-a-url' }],
    ['FLOTILLA_GITHUB_API', { ...base, FLOTILLA_GITHUB_API: 'http://ghe.example.com/api/v3', FLOTILLA_GITHUB_TOKEN: 'tok' }],
    ['FLOTILLA_STATE_DIR', { ...base, FLOTILLA_STATE_DIR: 'state' }],
    ['FLOTILLA_HEALTH_TIMEOUT', { ...base, FLOTILLA_HEALTH_TIMEOUT: '1e300' }],
    ['FLOTILLA_GIT_TIMEOUT', { ...base, FLOTILLA_GIT_TIMEOUT: 'Infinity' }],
    ['FLOTILLA_JITTER', { ...base, FLOTILLA_JITTER: '-1' }],
    ['FLOTILLA_BACKOFF_MAX', { ...base, FLOTILLA_BACKOFF: '60', FLOTILLA_BACKOFF_MAX: '30' }],
    ['FLOTILLA_PROJECT', { ...base, FLOTILLA_PROJECT: 'Linda.Prod' }],
    ['FLOTILLA_PROJECT', { ...base, FLOTILLA_PROJECT: '_linda' }],
    ['FLOTILLA_BRANCH', { ...base, FLOTILLA_BRANCH: '../../etc' }],
    ['FLOTILLA_BRANCH', { ...base, FLOTILLA_BRANCH: 'tenants/linda.lock' }],
    ['FLOTILLA_BRANCH', { ...base, FLOTILLA_BRANCH: 'tenants/lin da' }],
    ['FLOTILLA_BRANCH', { ...base, FLOTILLA_BRANCH: '-linda' }],
    ['FLOTILLA_SCHEDUEL', { ...base, FLOTILLA_SCHEDUEL: '*/5 * * * *' }],
    ['FLOTILLA_FORGE', { ...base, FLOTILLA_FORGE: 'gitlab' }],
  ])('names %s when it is missing or invalid', (setting, vars) => {
    expect(settingOf(() => parseAgentConfig(vars))).toBe(setting);
  });

  it('takes the forge from FLOTILLA_FORGE, else from the API URL (a path ending in /api/v1 is Gitea)', () => {
    expect(parseAgentConfig(base).forge).toBe('github');
    expect(parseAgentConfig({ ...base, FLOTILLA_GITHUB_API: 'https://ghe.example.com/api/v3' }).forge).toBe('github');
    expect(parseAgentConfig({ ...base, FLOTILLA_GITHUB_API: 'https://git.example.com/api/v1' }).forge).toBe('gitea');
    expect(parseAgentConfig({ ...base, FLOTILLA_GITHUB_API: 'https://git.example.com/gitea/api', FLOTILLA_FORGE: 'forgejo' }).forge).toBe('gitea');
    expect(parseAgentConfig({ ...base, FLOTILLA_GITHUB_API: 'https://git.example.com/api/v1', FLOTILLA_FORGE: 'github' }).forge).toBe('github');
    expect(() => parseAgentConfig({ ...base, FLOTILLA_FORGE: 'gitlab' })).toThrow(/FLOTILLA_FORGE.*must be github or gitea/);
  });

  it('accepts what is reasonable: no jitter, plain http to loopback with a token, a 6-field schedule, a cap equal to the first wait', () => {
    expect(parseAgentConfig({ ...base, FLOTILLA_JITTER: '0' }).jitterSeconds).toBe(0);
    for (const host of ['127.0.0.1:4000', '127.8.9.10', '[::1]:4000', 'localhost:4000', '[::ffff:127.0.0.1]'])
      expect(parseAgentConfig({ ...base, FLOTILLA_REPO: `http://${host}/acme/fleet.git`, FLOTILLA_GIT_TOKEN: 'tok' }).repo).toContain(host);
    expect(parseAgentConfig({ ...base, FLOTILLA_GITHUB_API: 'http://127.0.0.1:9/api', FLOTILLA_GITHUB_TOKEN: 'tok' }).githubApi).toBe('http://127.0.0.1:9/api');
    expect(parseAgentConfig({ ...base, FLOTILLA_SCHEDULE: '*/10 * * * * *' }).schedule).toBe('*/10 * * * * *');
    expect(parseAgentConfig({ ...base, FLOTILLA_BACKOFF: '900', FLOTILLA_BACKOFF_MAX: '900' }).backoffMaxSeconds).toBe(900);
    // A first wait above the default cap raises the default cap with it.
    expect(parseAgentConfig({ ...base, FLOTILLA_BACKOFF: '1200' }).backoffMaxSeconds).toBe(1200);
    expect(parseAgentConfig({ ...base, FLOTILLA_PROJECT: 'linda_prod-2' }).composeProject).toBe('linda_prod-2');
    expect(parseAgentConfig({ ...base, FLOTILLA_BRANCH: 'release/linda-v2.1' }).branch).toBe('release/linda-v2.1');
    // Names the project's other programs read may sit in a host's environment.
    expect(parseAgentConfig({ ...base, FLOTILLA_PUBLISH_TOKEN: 'x', FLOTILLA_TEST_RUN_DIR: '/tmp', FLOTILLA_HOOK_NAME: 'x' }).tenant).toBe('linda');
  });

  it('suggests the closest setting for a misspelled name, and shows no token', () => {
    expect(() => parseAgentConfig({ ...base, FLOTILLA_HEALTHTIMEOUT: '5' })).toThrow(
      'FLOTILLA_HEALTHTIMEOUT: is not a flotilla-agent setting (among the settings given); did you mean FLOTILLA_HEALTH_TIMEOUT?',
    );
    const err = (() => {
      try {
        parseAgentConfig({ ...base, FLOTILLA_REPO: 'http://x-access-token:s3cret@git.example.com/acme/fleet.git' });
      } catch (e) {
        return e as Error;
      }
      throw new Error('accepted');
    })();
    expect(err.message).toMatch(/^FLOTILLA_REPO: "http:\/\/\*\*\*@git\.example\.com\/acme\/fleet\.git" is plain http and holds credentials/);
    expect(err.message).not.toContain('s3cret');
  });

  it('names no part of a settings-file line that may be a pasted token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-config-'));
    try {
      const envFile = join(dir, 'agent.env');
      await writeFile(envFile, `FLOTILLA_TENANT=pia\nghp_S3cr3tT0kenValue0123=\n`);
      const err = (await loadAgentConfig(envFile, {}).catch((e: unknown) => e)) as Error;
      expect(err.message).toBe(`--settings: ${envFile}:2: the name is not a flotilla-agent setting (settings are FLOTILLA_* names in capitals)`);
      await writeFile(envFile, `FLOTILLA_TENANT=pia\nghp_S3cr3tT0kenValue0123\n`);
      const noEquals = (await loadAgentConfig(envFile, {}).catch((e: unknown) => e)) as Error;
      expect(noEquals.message).toMatch(/^--settings: .*agent\.env:2: expected NAME=value/);
      expect(noEquals.message).not.toContain('S3cr3t');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
      await expect(loadAgentConfig(join(dir, 'missing.env'), {})).rejects.toThrow(/^--settings: cannot read .*missing\.env/);
      const unreadable = join(dir, 'nope');
      await expect(loadAgentConfig(envFile, { FLOTILLA_DIR: unreadable })).rejects.toThrow(/FLOTILLA_DIR/);
    } finally {
      await chmod(dir, 0o700);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
