// `flotilla publish` on 1,000 generated tenants, run as a separate process under a
// pseudo-terminal (`script -qc`): a person at a terminal sees a progress bar; the
// same command piped, or with CI=true, prints no bar at all.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgress, isCi, progressWanted } from '../../renderer/progress.js';
import { startGitServer, type GitServer } from '../support/git-server.js';

const execFileAsync = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');
const TENANTS = 1000;
const SOURCE = 'c0ffee'.padEnd(40, '0');

let server: GitServer;
let work: string;
let fleetRoot: string;

beforeAll(async () => {
  server = await startGitServer();
  work = await mkdtemp(join(tmpdir(), 'flotilla-progress-'));
  fleetRoot = join(work, 'fleet-repo');
  await cp(join(repoRoot, 'templates'), join(fleetRoot, 'templates'), { recursive: true });
  await cp(join(repoRoot, 'fleet/fleet.yaml'), join(fleetRoot, 'fleet/fleet.yaml'));
  await cp(join(repoRoot, 'fleet/tenants'), join(fleetRoot, 'fleet/tenants'), { recursive: true });
  const model = await readFile(join(repoRoot, 'fleet/tenants/soroush.yaml'), 'utf8');
  for (let i = 1; i <= TENANTS; i++) {
    const slug = `t${String(i).padStart(4, '0')}`;
    await writeFile(join(fleetRoot, 'fleet/tenants', `${slug}.yaml`), model.replaceAll('soroush', slug));
  }
});
afterAll(async () => {
  await server.stop();
  await rm(work, { recursive: true, force: true });
});

/** The publish CLI as its own process; `tty` runs it under a pseudo-terminal. Async: the git server lives in this process. */
async function publish(repo: string, opts: { tty: boolean; env?: Record<string, string> }): Promise<string> {
  const argv = [
    process.execPath, '--import', 'tsx', join(repoRoot, 'renderer/main.ts'),
    '--root', fleetRoot, 'publish', '--repo', server.url(repo), '--commit', SOURCE, '--source-repo', 'https://example.test/acme/fleet.git',
    '--cache', join(work, `${repo}-cache`), '--all-waves',
  ];
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', TERM: 'xterm', ...opts.env };
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const { stdout, stderr } = opts.tty
    ? await execFileAsync('script', ['-qec', `${quoted} 2>&1`, '/dev/null'], { cwd: repoRoot, env, maxBuffer: 64 << 20 })
    : await execFileAsync(argv[0]!, argv.slice(1), { cwd: repoRoot, env, maxBuffer: 64 << 20 });
  return stdout + stderr;
}

describe('progress on a large fleet', () => {
  // One cold publish of every branch (the slow part), then small changes on top of it.
  it('draws a bar for 1,000 tenants on a terminal, and none when piped or in CI', { timeout: 400_000 }, async () => {
    await server.createBareRepo('fleet.git');
    const total = TENANTS + 5; // and the example fleet's tenants, but for the paused one
    const retag = (slug: string, tag: string) =>
      writeFile(join(fleetRoot, 'fleet/tenants', `${slug}.yaml`), `imageTag: ${tag}\n`, { flag: 'a' });

    // Cold: every branch is new, so the bar runs over the compare and the push of 1,005 tenants.
    const onTty = await publish('fleet.git', { tty: true });
    expect(onTty).toContain(`${total} committed`);
    expect(onTty).toMatch(new RegExp(`compare +\\[[█░]+\\] ${total}/${total}`));
    expect(onTty).toMatch(new RegExp(`push +\\[[█░]+\\] ${total}/${total}`));
    expect(onTty).toMatch(/push +\[[█░]+\] \d+\/\d+ t\d{4}/); // names the tenant just pushed
    expect(onTty).toContain('\r');

    await retag('t0500', 'v9.0.1');
    const piped = await publish('fleet.git', { tty: false });
    expect(piped).toContain('1 committed');
    expect(piped).not.toMatch(/compare +\[|push +\[|█|░|\r/);

    await retag('t0501', 'v9.0.1');
    const inCi = await publish('fleet.git', { tty: true, env: { CI: 'true' } });
    expect(inCi).toContain('1 committed');
    expect(inCi).not.toMatch(/compare +\[|push +\[|█|░/);
  });
});

describe('progress while planning a large fleet', () => {
  it('draws a bar per rendered side on a terminal, and none when piped', async () => {
    const git = (...args: string[]) =>
      execFileAsync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: fleetRoot });
    await git('init', '-q', '-b', 'main');
    await git('add', '-A');
    await git('commit', '-qm', 'fleet');
    await writeFile(join(fleetRoot, 'fleet/tenants/t0042.yaml'), 'imageTag: v9.9.9\n', { flag: 'a' });
    const argv = [process.execPath, '--import', 'tsx', join(repoRoot, 'renderer/main.ts'), '--root', fleetRoot, 'plan', '--base', 'main', '--no-registry-check', '--format', 'json'];
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', TERM: 'xterm' };
    const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const onTty = await execFileAsync('script', ['-qec', `${quoted} 2>&1 >/dev/null`, '/dev/null'], { cwd: repoRoot, env, maxBuffer: 64 << 20 });
    const total = TENANTS + 6; // the example fleet's six, paused one included: plan shows every tenant
    expect(onTty.stdout).toMatch(new RegExp(`render base +\\[[█░]+\\] ${total}/${total}`));
    expect(onTty.stdout).toMatch(new RegExp(`render head +\\[[█░]+\\] ${total}/${total}`));
    const piped = await execFileAsync(argv[0]!, argv.slice(1), { cwd: repoRoot, env, maxBuffer: 64 << 20 });
    expect(piped.stderr).not.toMatch(/render (base|head) +\[|█|░|\r/);
    const report = JSON.parse(piped.stdout) as { tenants: { slug: string; change: string }[] };
    expect(report.tenants.filter((t) => t.change !== 'unchanged').map((t) => t.slug)).toEqual(['t0042']);
  }, 300_000);
});

describe('progress decision', () => {
  it('shows a bar only on a TTY outside CI', () => {
    expect(isCi({ CI: 'true' })).toBe(true);
    expect(isCi({ CI: '1' })).toBe(true);
    expect(isCi({ CI: 'false' })).toBe(false);
    expect(isCi({})).toBe(false);
    expect(progressWanted({ isTTY: true, write: () => true }, {})).toBe(true);
    expect(progressWanted({ isTTY: true, write: () => true }, { CI: 'true' })).toBe(false);
    expect(progressWanted({ isTTY: false, write: () => true }, {})).toBe(false);
    let written = '';
    const quiet = createProgress({ isTTY: false, write: (s) => ((written += s), true) }, {});
    quiet.update('compare', 1, 2, 'a');
    quiet.stop();
    expect(written).toBe('');
  });
});
