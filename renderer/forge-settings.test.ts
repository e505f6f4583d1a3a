// The forge a command talks to, from the same settings on every forge: FLOTILLA_FORGE,
// else the API URL (GitHub, GHE's /api/v3, Gitea/Forgejo's /api/v1), and the token.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startGitHubStandIn, type GitHubStandIn } from '../test/support/github-standin.js';
import { startGiteaStandIn, type GiteaStandIn } from '../test/support/gitea-standin.js';
import { SettingError } from './core/errors.js';
import { forgeFromEnv, forgeKind } from './forge-settings.js';

const SHA = 'c3'.repeat(20);

describe('forge settings', () => {
  it('takes FLOTILLA_FORGE first, else the API URL', () => {
    expect(forgeKind({})).toBe('github');
    expect(forgeKind({ GITHUB_API_URL: 'https://ghe.example.com/api/v3' })).toBe('github');
    expect(forgeKind({ GITHUB_API_URL: 'https://git.example.com/api/v1' })).toBe('gitea');
    expect(forgeKind({ FLOTILLA_GITHUB_API: 'https://git.example.com/api/v1', GITHUB_API_URL: 'https://api.github.com' })).toBe('gitea');
    expect(forgeKind({ FLOTILLA_FORGE: 'forgejo', GITHUB_API_URL: 'https://git.example.com/forgejo' })).toBe('gitea');
    expect(forgeKind({ FLOTILLA_FORGE: 'github', GITHUB_API_URL: 'https://git.example.com/api/v1' })).toBe('github');
  });

  it('names the setting to fix: FLOTILLA_FORGE that is no forge, a missing token', () => {
    const err = (() => {
      try {
        forgeFromEnv({ FLOTILLA_FORGE: 'gitlab', GITHUB_TOKEN: 'x' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SettingError);
    expect((err as SettingError).setting).toBe('FLOTILLA_FORGE');
    expect(() => forgeFromEnv({ GITHUB_API_URL: 'https://git.example.com/api/v1' })).toThrow(/FLOTILLA_GITHUB_TOKEN: not set/);
  });

  describe('against the stand-ins, behind the paths a real install has', () => {
    let github: GitHubStandIn;
    let gitea: GiteaStandIn;
    const seen: string[] = [];
    /** GHE at https://ghe.example/api/v3 and a Forgejo under a path of its own, both answered by the stand-ins. */
    const proxy: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      seen.push(`${init?.method ?? 'GET'} ${url}`);
      return fetch(url.replace('http://ghe.example/api/v3', github.url).replace('http://code.example/forgejo/api', gitea.url), init);
    };

    beforeEach(async () => {
      github = await startGitHubStandIn({ repos: ['acme/fleet'] });
      gitea = await startGiteaStandIn({ repos: ['acme/fleet'] });
      seen.length = 0;
    });
    afterEach(async () => {
      expect(github.violations()).toEqual([]);
      expect(gitea.violations()).toEqual([]);
      await github.close();
      await gitea.close();
    });

    it('GitHub Enterprise Server through its /api/v3 URL', async () => {
      const forge = forgeFromEnv({ GITHUB_TOKEN: github.token, GITHUB_API_URL: 'http://ghe.example/api/v3' }, { fetch: proxy });
      expect(forge.kind).toBe('github');
      await forge.createCommitStatus({ owner: 'acme', repo: 'fleet', sha: SHA, state: 'success', context: 'flotilla/rollout', description: 'done' });
      expect(seen).toEqual([`POST http://ghe.example/api/v3/repos/acme/fleet/statuses/${SHA}`]);
      expect(github.statuses('acme/fleet', SHA).map((s) => s.state)).toEqual(['success']);
    });

    it('Forgejo by FLOTILLA_FORGE when its URL does not end in /api/v1', async () => {
      const forge = forgeFromEnv({ FLOTILLA_GITHUB_TOKEN: gitea.token, FLOTILLA_GITHUB_API: 'http://code.example/forgejo/api', FLOTILLA_FORGE: 'forgejo' }, { fetch: proxy });
      expect(forge.kind).toBe('gitea');
      await forge.createCommitStatus({ owner: 'acme', repo: 'fleet', sha: SHA, state: 'pending', context: 'flotilla/rollout', description: 'wave 1' });
      expect((await forge.listStatuses({ owner: 'acme', repo: 'fleet', ref: SHA })).map((s) => s.state)).toEqual(['pending']);
      expect(gitea.statuses('acme/fleet', SHA).map((s) => s.state)).toEqual(['pending']);
    });
  });
});
