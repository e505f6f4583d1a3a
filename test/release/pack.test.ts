// The packed release: what `npm pack` puts in the tarball, and that the tarball, installed
// into an empty prefix with no copy of Flotilla's source beside it, runs.
//
// The pack is made from a clean copy of the work tree (the files git tracks or would
// track: no dist/, no node_modules/ but a link to this checkout's, for the compiler), so
// `prepack` has to build, as on a fresh clone. The install uses a lockfile made from this
// repository's own and `npm ci --offline`: the tests run in a network namespace with only
// loopback, and the npm cache already holds every tarball the lockfile names.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackResult {
  filename: string;
  size: number;
  files: Array<{ path: string }>;
}

/** What must never ship: tests, fixtures, CI files, sources, benchmarks, source maps. */
function unwanted(path: string): boolean {
  return (
    /\.(test|bench)\.(ts|js)$/.test(path) ||
    /(^|\/)fixtures\//.test(path) ||
    /^(test|bench|\.github|\.ci|scripts|docs|docker|fleet|templates|renderer|agent|dist\/test|dist\/bench)\//.test(path) ||
    (path.endsWith('.ts') && !path.endsWith('.d.ts')) ||
    path.endsWith('.map') ||
    /^(tsconfig.*|vitest\.config\..*|package-lock\.json|\.gitignore)$/.test(path)
  );
}

async function npmJson<T>(args: string[], cwd: string): Promise<T> {
  let stdout: string;
  try {
    ({ stdout } = await run(npm, args, { cwd, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false' } }));
  } catch (err) {
    // tsc reports on stdout: show it, not only npm's "command failed".
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed:\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-2000)}`);
  }
  // Lifecycle scripts print before the JSON; the JSON is the last top-level array.
  const start = stdout.lastIndexOf('\n[') >= 0 ? stdout.lastIndexOf('\n[') + 1 : stdout.indexOf('[');
  return JSON.parse(stdout.slice(start)) as T;
}

describe('npm pack', () => {
  it('lists only dist/renderer, dist/agent, the scaffold, the README and package.json (dry run on this checkout)', async () => {
    const [result] = await npmJson<PackResult[]>(['pack', '--dry-run', '--json', '--ignore-scripts'], repo);
    const paths = result!.files.map((f) => f.path);
    // What `flotilla init` copies; its .gitignore ships as scaffold/gitignore, since npm packs no .gitignore.
    expect(paths).toEqual(expect.arrayContaining(['scaffold/fleet/fleet.yaml', 'scaffold/gitignore', 'scaffold/.github/workflows/publish.yml', 'scaffold/README.md']));
    expect(paths.filter(unwanted)).toEqual([]);
    expect(paths.filter((p) => !/^(dist\/(renderer|agent)\/|scaffold\/|README\.md$|LICENSE|package\.json$)/.test(p))).toEqual([]);
  });
});

describe('the packed release, from a clean copy', () => {
  let tmp: string;
  let pack: PackResult;
  let tarball: string;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'flotilla-pack-'));
    const src = join(tmp, 'src');
    // The files git tracks or would track, as a clean clone of this work tree would have them.
    const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, maxBuffer: 64 << 20 });
    for (const file of new Set(stdout.split('\0').filter(Boolean))) {
      const from = join(repo, file);
      if (!existsSync(from) || /^(node_modules|dist)(\/|$)/.test(file)) continue; // moved away, or not source
      mkdirSync(dirname(join(src, file)), { recursive: true });
      cpSync(from, join(src, file));
    }
    symlinkSync(join(repo, 'node_modules'), join(src, 'node_modules'), 'dir');
    const [packed] = await npmJson<PackResult[]>(['pack', '--json', '--pack-destination', tmp], src);
    pack = packed!;
    tarball = join(tmp, pack.filename);
  }, 300_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('holds the built entry points and the schema they read, and no tests, fixtures, CI files or sources', () => {
    const paths = pack.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/renderer/main.js', 'dist/agent/main.js']));
    expect(paths.some((p) => /^dist\/renderer\/(.+\/)?fleet-schema\.json$/.test(p)), 'the fleet schema the renderer imports').toBe(true);
    expect(paths.filter(unwanted)).toEqual([]);
    // "little else": a few hundred kB, not the repository.
    expect(pack.size).toBeLessThan(1_000_000);
  });

  it('installs into an empty prefix and runs flotilla --help, flotilla check on a fleet, flotilla init then check in the new repo, flotilla-agent --help', async () => {
    const prefix = join(tmp, 'prefix');
    mkdirSync(prefix);
    cpSync(tarball, join(prefix, 'flotilla.tgz'));
    const pkg = JSON.parse(readFileSync(join(tmp, 'src', 'package.json'), 'utf8')) as {
      version: string;
      license: string;
      dependencies: Record<string, string>;
      bin: Record<string, string>;
      engines: Record<string, string>;
    };
    // The runtime part of this repository's lockfile, with the tarball as the one top-level dependency.
    const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
    const packages: Record<string, unknown> = {
      '': { dependencies: { flotilla: 'file:flotilla.tgz' } },
      'node_modules/flotilla': { version: pkg.version, resolved: 'file:flotilla.tgz', license: pkg.license, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines },
    };
    for (const [path, entry] of Object.entries(lock.packages)) if (path && !entry.dev && !entry.link) packages[path] = entry;
    writeFileSync(join(prefix, 'package.json'), JSON.stringify({ private: true, dependencies: { flotilla: 'file:flotilla.tgz' } }));
    writeFileSync(join(prefix, 'package-lock.json'), JSON.stringify({ name: 'prefix', lockfileVersion: 3, requires: true, packages }));
    const install = ['ci', '--omit=dev', '--no-audit', '--no-fund', '--ignore-scripts'];
    try {
      await run(npm, [...install, '--offline'], { cwd: prefix, maxBuffer: 16 << 20 });
    } catch {
      // A cache that lacks a tarball (a machine that never ran npm ci): the registry, where it is reachable.
      await run(npm, [...install, '--prefer-offline'], { cwd: prefix, maxBuffer: 16 << 20 });
    }
    expect(readdirOrEmpty(join(prefix, 'node_modules', 'flotilla'))).not.toContain('test');

    const bin = join(prefix, 'node_modules', '.bin');
    const help = await run(join(bin, 'flotilla'), ['--help'], { cwd: prefix });
    expect(help.stdout).toMatch(/Usage: flotilla/);
    expect(help.stdout).toMatch(/\bcheck\b/);

    // A fleet repo that is not Flotilla's source: fleet/ and templates/ only.
    const fleet = join(tmp, 'my-fleet');
    cpSync(join(repo, 'fleet'), join(fleet, 'fleet'), { recursive: true });
    cpSync(join(repo, 'templates'), join(fleet, 'templates'), { recursive: true });
    const check = await run(join(bin, 'flotilla'), ['check'], { cwd: fleet });
    expect(`${check.stdout}${check.stderr}`).not.toMatch(/error/i);
    const checkRoot = await run(join(bin, 'flotilla'), ['--root', fleet, 'check'], { cwd: prefix });
    expect(checkRoot.stdout).toBe(check.stdout);

    // A fleet repo of one's own from the installed package's scaffold: init, then check in it.
    const init = await run(join(bin, 'flotilla'), ['init', 'new-fleet', '--action', 'my-org/flotilla@v0'], { cwd: tmp });
    expect(init.stdout).toContain('created .github/workflows/publish.yml');
    expect(init.stdout).toContain('created .gitignore');
    const newFleet = join(tmp, 'new-fleet');
    expect(readFileSync(join(newFleet, '.github/workflows/publish.yml'), 'utf8')).toContain('uses: my-org/flotilla@v0');
    const checkNew = await run(join(bin, 'flotilla'), ['check'], { cwd: newFleet });
    expect(checkNew.stdout).toBe('ok: 2 tenants (0 paused), 6 files rendered\n');

    const agentHelp = await run(join(bin, 'flotilla-agent'), ['--help'], { cwd: prefix });
    expect(agentHelp.stdout).toMatch(/Usage: flotilla-agent/);
  }, 180_000);
});

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
