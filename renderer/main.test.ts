import { describe, expect, it } from 'vitest';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFleetCheckout, runFlotilla, tempDirs } from '../test/support/cli.js';
import { parseManifest } from './core/manifest.js';
import { runCli } from './main.js';
import type { CliIo } from './cli.js';
import { reportCliError } from './core/exit.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const tempDir = tempDirs('flotilla-cli-');

/** A repo root with the real templates and either the real fleet or a fixture one. */
const repoWith = async (fleetDir?: string): Promise<string> => copyFleetCheckout(repoRoot, await tempDir(), fleetDir);

const run = (args: string[]) => runFlotilla(args, repoRoot);

describe('flotilla check', () => {
  it('passes on the repository itself', async () => {
    const r = await run(['--root', repoRoot, 'check']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^ok: \d+ tenants \(1 paused\)/);
  });

  it('exits 1 listing every problem in every file', async () => {
    const root = await repoWith(join(fixtures, 'broken-fleet'));
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(/^flotilla: fleet\/tenants\/linda\.yaml:2: imageTag: "v2\.10\.3\+hotfix" is not a valid image tag/),
      expect.stringMatching(/^fleet\/tenants\/pia\.yaml:3: pasued: unknown key/),
      'fleet/tenants/soroush.yaml:4: env.SMTP_HOST: duplicate key "SMTP_HOST": each key may appear once',
      'fleet/fleet.yaml:21: waves[0].tenants[1]: unknown tenant "marcele" (no file fleet/tenants/marcele.yaml)',
    ]);
  });

  it('reports a template bug once, naming the tenants it breaks', async () => {
    const root = await repoWith();
    const api = join(root, 'templates/nginx/conf.d/api.conf.hbs');
    await writeFile(api, (await readFile(api, 'utf8')).replace('server_name api.{{domain}};', 'server_name api.{{domian}};'));
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^flotilla: templates\/nginx\/conf\.d\/api\.conf\.hbs:4 \(tenant bnkops, linda, marcelle, pia, soroush and 1 more\): variable "domian" is not defined/,
    );
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('lists a fleet problem and a template syntax error together', async () => {
    const root = await repoWith();
    await writeFile(join(root, 'fleet/tenants/pia.yaml'), 'mode: managed\nimageTag: ""\n');
    await writeFile(join(root, 'templates/nginx/conf.d/api.conf.hbs'), '# api\nserver_name {{#if domain}};\n');
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('fleet/tenants/pia.yaml:2: imageTag: "" is not a valid image tag');
    expect(r.stderr).toMatch(/templates\/nginx\/conf\.d\/api\.conf\.hbs:2: \{\{#if\}\} opened here is never closed/);
  });
});

describe('flotilla render', () => {
  it('writes one folder per tenant asked for, with modes and the manifest', async () => {
    const out = await tempDir();
    const r = await run(['--root', repoRoot, 'render', '--tenant', 'linda', 'pia', '--out', out, '--commit', 'c'.repeat(40)]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const manifest = parseManifest(await readFile(join(out, 'linda/.flotilla/manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ tenant: 'linda', source: { commit: 'c'.repeat(40) } });
    for (const f of manifest.files) expect((await stat(join(out, 'linda', f.path))).mode & 0o777).toBe(f.mode);
    await expect(stat(join(out, 'pia/docker-compose.yml'))).resolves.toBeTruthy();
    await expect(stat(join(out, 'marcelle'))).rejects.toThrow(/ENOENT/);
  });

  it('renders again over its own earlier render', async () => {
    const out = await tempDir();
    expect(await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', out, '--commit', 'a'.repeat(40)])).toMatchObject({ code: 0 });
    expect(await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', out, '--commit', 'b'.repeat(40)])).toMatchObject({ code: 0 });
    expect(parseManifest(await readFile(join(out, 'pia/.flotilla/manifest.json'), 'utf8')).source.commit).toBe('b'.repeat(40));
  });

  it('refuses, exit 3, a folder holding what it did not write (a live install), and changes nothing', async () => {
    const out = await tempDir();
    await mkdir(join(out, 'pia'));
    await writeFile(join(out, 'pia/.env'), 'POSTGRES_PASSWORD=kept\n');
    await writeFile(join(out, 'pia/docker-compose.yml'), 'services: {}\n');
    const r = await run(['--root', repoRoot, 'render', '--tenant', 'linda', 'pia', '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`refusing to write ${join(out, 'pia')}`);
    expect(r.stderr).toContain('.env (not written by flotilla render)');
    expect(await readFile(join(out, 'pia/.env'), 'utf8')).toBe('POSTGRES_PASSWORD=kept\n');
    expect(await readFile(join(out, 'pia/docker-compose.yml'), 'utf8')).toBe('services: {}\n');
    // Checked before any tenant is written: linda, which came first, was not written either.
    await expect(stat(join(out, 'linda'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a file added or edited by hand in its own earlier render', async () => {
    const out = await tempDir();
    await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', out]);
    await writeFile(join(out, 'pia/notes.txt'), 'mine\n');
    const added = await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', out]);
    expect(added).toMatchObject({ code: 3 });
    expect(added.stderr).toContain('notes.txt (not written by flotilla render)');
    await rm(join(out, 'pia/notes.txt'));
    await writeFile(join(out, 'pia/nginx/nginx.conf'), '# hotfix\n');
    const edited = await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', out]);
    expect(edited.stderr).toContain('nginx/nginx.conf (changed since flotilla render wrote it)');
    expect(await readFile(join(out, 'pia/nginx/nginx.conf'), 'utf8')).toBe('# hotfix\n');
  });

  it('exits 2 for an unknown tenant and names it', async () => {
    const out = await tempDir();
    const r = await run(['--root', repoRoot, 'render', '--tenant', 'lindaa', '--out', out]);
    expect(r).toMatchObject({ code: 2, stderr: 'flotilla: --tenant: no tenant "lindaa" in fleet/tenants/\n' });
  });
});

describe('error reporting', () => {
  it('turns an unexpected error into exit 70 with its stack', () => {
    let stderr = '';
    const code = reportCliError('flotilla', new TypeError('boom'), (s) => void (stderr += s));
    expect(code).toBe(70);
    expect(stderr).toMatch(/internal error[\s\S]*TypeError: boom\n\s+at /);
  });

  it('exits with commander’s code for a usage error', async () => {
    const r = await run(['render']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required option '--out <dir>' not specified");
  });
});

describe('a user mistake is a message naming what to fix, never an internal error', () => {
  it('plan --out into a folder that does not exist names the flag and the path (exit 2)', async () => {
    const { execFileSync } = await import('node:child_process');
    const root = await repoWith();
    for (const args of [['init', '-q', '-b', 'main'], ['add', '-A'], ['commit', '-q', '-m', 'fleet']])
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: root });
    const out = join(await tempDir(), 'no-such-folder', 'plan.md');
    const r = await run(['--fleet-dir', root, 'plan', '--base', 'HEAD', '--no-registry-check', '--out', out]);
    expect(r).toMatchObject({ code: 2, stdout: '', stderr: `flotilla: --out: cannot write ${out}: its folder does not exist\n` });
  });

  it('comment --file that does not exist names the flag and the path (exit 2)', async () => {
    const missing = join(await tempDir(), 'plan.md');
    let stderr = '';
    // The file is read before any request, so the API URL (a closed loopback port) is never used.
    const io: CliIo = { stdout: () => undefined, stderr: (s) => void (stderr += s), cwd: repoRoot, env: { GITHUB_TOKEN: 'x', GITHUB_API_URL: 'http://127.0.0.1:9' } };
    const code = await runCli(['--fleet-dir', repoRoot, 'comment', '--pr', '1', '--repo', 'acme/fleet', '--file', missing], io);
    expect({ code, stderr }).toEqual({ code: 2, stderr: `flotilla: --file: cannot read ${missing}: no such file\n` });
  });

  it('takes --fleet-dir (and the older --root) for the fleet checkout, else the working directory', async () => {
    const fleetDir = await repoWith();
    for (const args of [['--fleet-dir', fleetDir, 'check'], ['--root', fleetDir, 'check']]) {
      expect((await run(args)).code).toBe(0);
    }
    let stdout = '';
    const io: CliIo = { stdout: (s) => void (stdout += s), stderr: () => undefined, cwd: fleetDir, env: {} };
    expect(await runCli(['check'], io)).toBe(0);
    expect(stdout).toMatch(/^ok: /);
    const elsewhere = await run(['--fleet-dir', join(fleetDir, 'nope'), 'check']);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('fleet/fleet.yaml: file is missing');
    expect(elsewhere.stderr).toContain(`templates/: no templates folder at ${join(fleetDir, 'nope', 'templates')}`);
  });
});

describe('revisions as git spells them', () => {
  it('plan --base HEAD~1 plans the last commit; a --signing-key that does not exist is named, exit 2', async () => {
    const { execFileSync } = await import('node:child_process');
    const root = await repoWith();
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: root, encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'fleet');
    const tenant = join(root, 'fleet', 'tenants', 'pia.yaml');
    await writeFile(tenant, `${await readFile(tenant, 'utf8')}imageTag: v9.9.9\n`);
    git('commit', '-q', '-am', 'bump pia');

    const r = await run(['--fleet-dir', root, 'plan', '--base', 'HEAD~1', '--head', 'HEAD', '--no-registry-check', '--format', 'json']);
    expect(r.stderr).toBe('');
    const report = JSON.parse(r.stdout) as { base: { commit: string }; tenants: Array<{ slug: string; change: string }> };
    expect(report.base.commit).toBe(git('rev-parse', 'HEAD~1'));
    expect(report.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug)).toEqual(['pia']);

    const missing = join(root, 'no-such-key');
    const signed = await run(['--fleet-dir', root, 'publish', '--repo', 'http://127.0.0.1:9/fleet.git', '--all-waves', '--signing-key', missing]);
    expect(signed.code).toBe(2);
    expect(signed.stderr).toContain(missing);
    expect(signed.stderr).not.toContain('internal error');
  });
});
