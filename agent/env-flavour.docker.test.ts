// Issue 13 on the real engine: env patch values holding `$`, `'`, `"` and `\` reach the
// container exactly, through the host's compose (Debian's docker-compose 1.29, which
// reads `.env` with python-dotenv) against the private dockerd of the test run.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { scanComposeText } from '../renderer/core/compose-vars.js';
import { remoteBranchHead } from '../renderer/core/git.js';
import { MANIFEST_PATH, serializeManifest, sha256, type Manifest, type RenderedFile } from '../renderer/core/manifest.js';
import { publishTenants } from '../renderer/publish/publish.js';
import { startGitServer, type GitServer } from '../test/support/git-server.js';
import { docker } from '../test/support/images.js';
import { fakeSourceCommit, FIXTURE_SOURCE_REPO } from '../test/support/tenant-fixture.js';
import { createComposeRunner } from './compose.js';
import { parseAgentConfig } from './config.js';
import { reconcileOnce } from './reconcile.js';

const ctx = inject('docker');
const client = { host: ctx.host, dockerConfig: ctx.dockerConfig };
const TENANT = 'promo';

// Each value needs a form of its own: `$` with `'`, both quotes with `$`, `\\`, a trailing `\`.
const VALUES: Record<string, string> = {
  PROMO: "it's $5 off",
  QUOTED: `say "hi", it's $HOME`,
  BACKSLASHES: 'a\\\\b',
  WINDOWS_DIR: 'C:\\dir\\',
};

const COMPOSE = [
  'services:',
  '  app:',
  `    image: ${ctx.testImage.repository}:v1`,
  '    init: true',
  '    network_mode: none',
  '    command: ["sleep", "3600"]',
  '    environment:',
  ...Object.keys(VALUES).map((key) => `      ${key}: \${${key}}`),
  '',
].join('\n');

describe('env patch values with $, quotes and backslashes, on the real engine with compose v1', () => {
  const runner = createComposeRunner({ command: ['docker-compose'], dockerHost: ctx.host, env: { ...process.env, DOCKER_CONFIG: ctx.dockerConfig } });
  let git: GitServer;
  let work: string;
  let repoUrl: string;

  beforeAll(async () => {
    git = await startGitServer();
    await git.createBareRepo('fleet.git');
    repoUrl = git.url('fleet.git');
    work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'env-flavour-'));
    await mkdir(join(work, 'install'));
  });

  afterAll(async () => {
    await runner.down({ dir: join(work, 'install'), project: TENANT }).catch(() => {});
    await git?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('applies the release, and the container sees every value exactly as the fleet wrote it', async () => {
    const sourceCommit = fakeSourceCommit('promo release');
    const files: RenderedFile[] = [{ path: 'docker-compose.yml', content: COMPOSE, mode: 0o644 }];
    const manifest: Manifest = {
      schemaVersion: 1,
      tenant: TENANT,
      mode: 'managed',
      imageTag: 'v1',
      source: { repo: FIXTURE_SOURCE_REPO, commit: sourceCommit },
      files: files.map((f) => ({ path: f.path, sha256: sha256(f.content), mode: f.mode })),
      envPatch: VALUES,
      requiredVariables: scanComposeText(COMPOSE, 'docker-compose.yml').required,
      secrets: [],
    };
    files.push({ path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 });
    await publishTenants({ repoUrl, workDir: join(work, 'publish.git'), tenants: [{ slug: TENANT, files }], source: manifest.source });
    const commit = await remoteBranchHead(repoUrl, `tenants/${TENANT}`);

    const outcome = await reconcileOnce({
      config: parseAgentConfig({
        FLOTILLA_REPO: repoUrl,
        FLOTILLA_TENANT: TENANT,
        FLOTILLA_DIR: join(work, 'install'),
        FLOTILLA_STATE_DIR: join(work, 'state'),
        FLOTILLA_HEALTH_TIMEOUT: '30',
        FLOTILLA_COMPOSE: 'docker-compose',
      }),
      compose: runner,
      report: async () => {},
      log: () => {},
      healthPollMs: 250,
    });
    expect(outcome, JSON.stringify(outcome)).toMatchObject({ kind: 'applied', commit });
    // Forms python-dotenv reads back, and compose-go too (a compose v2 host gets `"it's \$5 off"`); keys in manifest order.
    expect(await readFile(join(work, 'install', '.env'), 'utf8')).toBe(
      `# Added by fleet env-patch\nBACKSLASHES="a\\\\\\\\b"\nPROMO='it\\'s $5 off'\nQUOTED='say "hi", it\\'s $HOME'\nWINDOWS_DIR=C:\\dir\\\n`,
    );

    const [app] = (await runner.services({ dir: join(work, 'install'), project: TENANT })).filter((s) => s.service === 'app');
    const env = JSON.parse(await docker(['inspect', '--format', '{{json .Config.Env}}', app!.container], client)) as string[];
    const seen = Object.fromEntries(
      env.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]).filter(([key]) => key! in VALUES),
    );
    expect(seen).toEqual(VALUES);
  });
});
