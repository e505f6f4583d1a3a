// Peak memory of the agent's fetch when the branch holds a large file, against the same
// fetch of a commit holding small files only, both in fresh Node processes of the same run
// (started with the daemon's flags; peak RSS from process.resourceUsage()). Before the
// pack guard, isomorphic-git inflated every blob whole to index the pack: 5 MB cost
// 146 MB, 100 MB 733 MB, and about 120 MB would OOM a 1 GB host. Now an object over the
// limit is refused from its pack header, so the peak must not grow with the file.
// The git CLI is the yardstick for time: the refusal must come no later than
// `git fetch --depth 1` of the same commit finishes.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DAEMON_NODE_FLAGS } from '../agent/daemon-node-flags.js';
import { startGitServer } from '../test/support/git-server.js';
import { benchRow, type BenchRow } from './bench-row.js';

const execFileAsync = promisify(execFile);
const SIZES_MB = [5, 50, 200];
/** The peak may grow this much over the small-files fetch (a file's size must not show). */
const TARGET_RATIO = 1.1;

// Runs in the child: one fetchBranch into a fresh repository, then its peak RSS and what happened.
const CHILD = `
const [gitModule, gitdir, url, branch] = process.argv.slice(1);
const { fetchBranch } = await import(gitModule);
const started = performance.now();
let outcome;
try { outcome = 'fetched ' + (await fetchBranch(gitdir, url, branch)); } catch (e) { outcome = e.message; }
const ms = performance.now() - started;
process.stdout.write(JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS, ms, outcome }));
`;

interface ChildResult {
  maxRssKb: number;
  ms: number;
  outcome: string;
}

function gitModule(): string {
  // dist/bench/large-object.bench.js -> dist/renderer/core/git.js (the benchmark always runs built).
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', 'renderer', 'core', 'git.js');
  if (!existsSync(path)) throw new Error(`${path} not found: run \`npm run build\` first`);
  return path;
}

function fetchInChild(gitdir: string, url: string, branch: string): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '--input-type=module', '-e', CHILD, gitModule(), gitdir, url, branch], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`fetch child exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as ChildResult);
    });
  });
}

export async function benchLargeObject(): Promise<BenchRow[]> {
  const tmp = await mkdtemp(join(tmpdir(), 'flotilla-bench-large-'));
  const server = await startGitServer({ root: join(tmp, 'repos') });
  const git = async (args: string[], cwd?: string) =>
    (await execFileAsync('git', ['-c', 'user.name=b', '-c', 'user.email=b@example.invalid', ...args], { cwd, env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: tmp } })).stdout.trim();
  try {
    await server.createBareRepo('fleet.git');
    const url = server.url('fleet.git');
    const src = join(tmp, 'src');
    await git(['init', '--quiet', '--initial-branch', 'tenants/small', src]);
    // A tenant tree of ordinary size: a compose file and a few hundred KB of config.
    await writeFile(join(src, 'docker-compose.yml'), 'services: {app: {image: app:v1}}\n');
    await mkdir(join(src, 'config'));
    for (let i = 0; i < 20; i++) await writeFile(join(src, 'config', `part-${i}.conf`), `${'x = 1\n'.repeat(2000)}# ${i}\n`);
    await git(['add', '.'], src);
    await git(['commit', '--quiet', '-m', 'small'], src);
    await git(['push', '--quiet', url, 'HEAD:refs/heads/tenants/small'], src);
    for (const mb of SIZES_MB) {
      await git(['checkout', '--quiet', '-B', `tenants/big-${mb}`, 'tenants/small'], src);
      await writeFile(join(src, 'big.bin'), '');
      // Zeros: cheap to push, and the size the pack declares is the full size.
      await truncate(join(src, 'big.bin'), mb * 1024 * 1024);
      await git(['add', 'big.bin'], src);
      await git(['commit', '--quiet', '-m', `${mb} MB`], src);
      await git(['push', '--quiet', url, `HEAD:refs/heads/tenants/big-${mb}`], src);
    }

    const baseline = await fetchInChild(join(tmp, 'small.git'), url, 'tenants/small');
    if (!baseline.outcome.startsWith('fetched')) throw new Error(`the small commit was not fetched: ${baseline.outcome}`);
    const baseMb = baseline.maxRssKb / 1024;
    const rows: BenchRow[] = [];
    let refusal200: ChildResult | undefined;
    for (const mb of SIZES_MB) {
      const result = await fetchInChild(join(tmp, `big-${mb}.git`), url, `tenants/big-${mb}`);
      if (mb === 200) refusal200 = result;
      const peakMb = result.maxRssKb / 1024;
      const refused = /over the \d+-byte limit/.test(result.outcome);
      rows.push(
        benchRow({
          name: `agent fetch of a commit holding a ${mb} MB file: peak RSS (baseline: small files only)`,
          unit: 'MB',
          value: Math.round(peakMb * 10) / 10,
          baseline: Math.round(baseMb * 10) / 10,
          ratio: Math.round((peakMb / baseMb) * 100) / 100,
          target: `<= ${TARGET_RATIO}x baseline, refused`,
          met: refused && peakMb / baseMb <= TARGET_RATIO,
        }),
      );
    }

    // The yardstick: the git CLI fetching the same 200 MB commit into a fresh repository.
    await git(['init', '--quiet', '--bare', join(tmp, 'cli.git')]);
    const started = performance.now();
    await git(['--git-dir', join(tmp, 'cli.git'), 'fetch', '--quiet', '--depth', '1', url, 'refs/heads/tenants/big-200']);
    const cliMs = performance.now() - started;
    rows.push(
      benchRow({
        name: 'refusing the 200 MB commit (baseline: git fetch --depth 1 of it)',
        unit: 'ms',
        value: Math.round(refusal200!.ms),
        baseline: Math.round(cliMs),
        target: '<= 1.0x baseline',
        met: refusal200!.ms <= cliMs,
      }),
    );
    return rows;
  } finally {
    await server.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}
