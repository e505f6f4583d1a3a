// `flotilla init DIR`: a fleet repo of one's own from the scaffold, with no copy of
// Flotilla's source, on which `check` and `render` work right away; never an overwrite.
import { lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFlotilla, tempDirs } from '../../test/support/cli.js';
import { ACTION_PLACEHOLDER, ScaffoldConflictError, initFleetRepo, scaffoldRoot } from '../fleet/scaffold.js';

const tempDir = tempDirs('flotilla-init-');
const run = runFlotilla;

/** Every file under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

const EXPECTED = [
  '.github/workflows/preview.yml',
  '.github/workflows/promote.yml',
  '.github/workflows/publish.yml',
  '.gitignore',
  'README.md',
  'fleet/fleet.yaml',
  'fleet/tenants/alpha.yaml',
  'fleet/tenants/bravo.yaml',
  'templates/docker-compose.yml.hbs',
  'templates/env.hbs',
  'templates/nginx/default.conf.hbs',
];

describe('flotilla init', () => {
  it('writes a fleet repo into a new folder, on which check and render --out work at once', async () => {
    const cwd = await tempDir();
    const r = await run(['init', 'my-fleet'], cwd);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const repo = join(cwd, 'my-fleet');
    expect(await tree(repo)).toEqual(EXPECTED);
    for (const file of EXPECTED) expect(r.stdout).toContain(`created ${file}\n`);
    expect(r.stdout).toContain(ACTION_PLACEHOLDER);

    const check = await run(['--fleet-dir', repo, 'check'], cwd);
    expect(check).toEqual({ code: 0, stdout: 'ok: 2 tenants (0 paused), 6 files rendered\n', stderr: '' });

    const out = join(cwd, 'out');
    const render = await run(['render', '--out', out], repo);
    expect(render).toMatchObject({ code: 0, stderr: '' });
    expect(render.stdout).toContain(`alpha: 3 files -> ${join(out, 'alpha')}`);
    const compose = await readFile(join(out, 'bravo', 'docker-compose.yml'), 'utf8');
    expect(compose).toContain('image: registry.example.com/my-org/my-app:${IMAGE_TAG:-0.9.0}');
    expect(await readFile(join(out, 'bravo', 'nginx', 'default.conf'), 'utf8')).toContain('server_name bravo.example.org;');
    const manifest = JSON.parse(await readFile(join(out, 'alpha', '.flotilla', 'manifest.json'), 'utf8')) as { envPatch: Record<string, string> };
    expect(manifest.envPatch).toMatchObject({ DOMAIN: 'alpha.example.com', IMAGE_TAG: '1.0.0', LOG_LEVEL: 'debug' });
  });

  it('runs Flotilla in the workflows through the action, never from a copy of its source', async () => {
    const repo = join(await tempDir(), 'fleet-repo');
    await run(['init', repo, '--action', 'my-org/flotilla@v0.1.0'], '/');
    for (const name of ['preview.yml', 'publish.yml', 'promote.yml']) {
      const text = await readFile(join(repo, '.github/workflows', name), 'utf8');
      expect(text).toContain('uses: my-org/flotilla@v0.1.0');
      expect(text).not.toContain(ACTION_PLACEHOLDER);
      expect(text).not.toMatch(/dist\/renderer|npm ci|node_modules/);
    }
    // The README keeps telling what the placeholder is.
    expect(await readFile(join(repo, 'README.md'), 'utf8')).toContain('FLOTILLA_PUBLISH_TOKEN');
    expect(await readFile(join(repo, '.gitignore'), 'utf8')).toContain('.flotilla-cache/');
  });

  it('takes a full URL for Gitea/Forgejo and refuses what is no action reference (exit 2, nothing written)', async () => {
    const parent = await tempDir();
    const ok = await run(['init', 'a', '--action', 'https://github.com/my-org/flotilla@v0'], parent);
    expect(ok.code).toBe(0);
    expect(await readFile(join(parent, 'a/.github/workflows/publish.yml'), 'utf8')).toContain('uses: https://github.com/my-org/flotilla@v0\n');
    const bad = await run(['init', 'b', '--action', 'flotilla; rm -rf /'], parent);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--action');
    await expect(stat(join(parent, 'b'))).rejects.toThrow(/ENOENT/);
  });

  it('writes into an existing folder that holds none of its files (a fresh git clone), and into --fleet-dir', async () => {
    const repo = await tempDir();
    await mkdir(join(repo, '.git'));
    await writeFile(join(repo, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    await writeFile(join(repo, 'LICENSE'), 'MIT\n');
    expect((await run(['--fleet-dir', repo, 'init'], '/')).code).toBe(0);
    expect(await tree(repo)).toEqual([...EXPECTED, '.git/HEAD', 'LICENSE'].sort());
    expect(await readFile(join(repo, 'LICENSE'), 'utf8')).toBe('MIT\n');
  });

  it('refuses, exit 3, a folder already holding a file it would write, naming each, and writes nothing', async () => {
    const repo = await tempDir();
    await mkdir(join(repo, 'fleet/tenants'), { recursive: true });
    await writeFile(join(repo, 'README.md'), '# mine\n');
    await writeFile(join(repo, 'fleet/tenants/alpha.yaml'), 'mode: adopted\n');
    await writeFile(join(repo, 'templates'), 'a file where a folder goes\n');
    const r = await run(['init', repo], '/');
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `flotilla: refusing to write ${repo}: it already holds README.md, fleet/tenants/alpha.yaml, templates; nothing was written (choose an empty or new folder, or move these away)\n`,
    );
    expect(await tree(repo)).toEqual(['README.md', 'fleet/tenants/alpha.yaml', 'templates']);
    expect(await readFile(join(repo, 'README.md'), 'utf8')).toBe('# mine\n');
    expect(await readFile(join(repo, 'fleet/tenants/alpha.yaml'), 'utf8')).toBe('mode: adopted\n');
  });

  it('refuses a second init of the same folder, and a DIR that is a file', async () => {
    const parent = await tempDir();
    expect((await run(['init', 'f'], parent)).code).toBe(0);
    const again = await run(['init', 'f'], parent);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain('.github/workflows/preview.yml, .github/workflows/promote.yml');
    expect(again.stderr).toMatch(/and 3 more; nothing was written/);
    await writeFile(join(parent, 'plain'), 'x');
    const file = await run(['init', 'plain'], parent);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain(`${join(parent, 'plain')} exists and is not a folder`);
  });

  it('counts a symlink in the way as a conflict, and never writes through it', async () => {
    const repo = await tempDir();
    const elsewhere = await tempDir();
    const { symlink } = await import('node:fs/promises');
    await symlink(join(elsewhere, 'target.md'), join(repo, 'README.md'));
    await expect(initFleetRepo(repo)).rejects.toBeInstanceOf(ScaffoldConflictError);
    expect((await lstat(join(repo, 'README.md'))).isSymbolicLink()).toBe(true);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it('finds the scaffold beside the nearest package.json (the repo from source, the package from dist/)', async () => {
    expect(scaffoldRoot()).toBe(join(import.meta.dirname, '..', '..', 'scaffold'));
    const pkg = await tempDir();
    await mkdir(join(pkg, 'dist/renderer/fleet'), { recursive: true });
    await mkdir(join(pkg, 'scaffold/fleet'), { recursive: true });
    await writeFile(join(pkg, 'package.json'), '{}');
    await writeFile(join(pkg, 'scaffold/fleet/fleet.yaml'), '');
    expect(scaffoldRoot(join(pkg, 'dist/renderer/fleet'))).toBe(join(pkg, 'scaffold'));
    await rm(join(pkg, 'scaffold'), { recursive: true });
    expect(() => scaffoldRoot(join(pkg, 'dist/renderer/fleet'))).toThrow(/no scaffold\/ beside/);
  });
});
