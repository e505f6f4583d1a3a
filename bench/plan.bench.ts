// Plan benchmark: `flotilla plan` as a PR runs it, for a change to one tenant of a
// 1,000-tenant fleet (the example fleet's templates; the six example tenants and copies of them). The whole CLI process is timed, from a git checkout with base and head
// commits, against the same CLI's start-up alone (`flotilla --help`) in the same run.
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchRow, median, type BenchRow } from './bench-row.js';
import { BENCH_TENANTS, findRepoRoot } from './render.bench.js';

const execFileAsync = promisify(execFile);
const ROUNDS = 5;
const TARGET_MS = 3000;
const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: tmpdir(), GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@localhost', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@localhost' };

async function git(dir: string, ...args: string[]): Promise<string> {
  return (await execFileAsync('git', ['-C', dir, ...args], { env: gitEnv })).stdout.trim();
}

/** A checkout holding the example fleet grown to BENCH_TENANTS tenants; returns base and head commits. */
export async function fleetCheckout(root: string, dir: string): Promise<{ base: string; head: string; changed: string }> {
  await cp(join(root, 'templates'), join(dir, 'templates'), { recursive: true });
  await mkdir(join(dir, 'fleet', 'tenants'), { recursive: true });
  await cp(join(root, 'fleet', 'fleet.yaml'), join(dir, 'fleet', 'fleet.yaml'));
  const examples = ['bnkops', 'linda', 'marcelle', 'pia', 'soroush', 'trbh'];
  const texts = await Promise.all(examples.map((slug) => readFile(join(root, 'fleet', 'tenants', `${slug}.yaml`), 'utf8')));
  let changed = '';
  for (let i = 0; i < BENCH_TENANTS; i++) {
    // The six example tenants as they are (the fleet's waves name them), then copies, each with its own domain.
    const slug = i < examples.length ? examples[i]! : `${examples[i % examples.length]}-${String(i).padStart(4, '0')}`;
    const text = i < examples.length ? texts[i]! : texts[i % texts.length]!.replace(/^domain: .*$/m, `domain: ${slug}.example.org`);
    await writeFile(join(dir, 'fleet', 'tenants', `${slug}.yaml`), text);
    if (i === examples.length + 1) changed = slug;
  }
  await git(dir, 'init', '-q', '-b', 'main');
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-q', '-m', 'base');
  const base = await git(dir, 'rev-parse', 'HEAD');
  const file = join(dir, 'fleet', 'tenants', `${changed}.yaml`);
  const text = await readFile(file, 'utf8');
  await writeFile(file, /^imageTag:/m.test(text) ? text.replace(/^imageTag: .*$/m, 'imageTag: v2.11.0') : `${text}imageTag: v2.11.0\n`);
  await git(dir, 'commit', '-q', '-am', `bump ${changed}`);
  return { base, head: await git(dir, 'rev-parse', 'HEAD'), changed };
}

async function timed(args: string[], cwd: string): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const { stdout } = await execFileAsync(process.execPath, args, { cwd, env: { ...process.env, CI: 'true' }, maxBuffer: 64 * 1024 * 1024 });
  return { ms: performance.now() - started, stdout };
}

export async function benchPlan(root = findRepoRoot()): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-plan-bench-'));
  try {
    const { base, head, changed } = await fleetCheckout(root, dir);
    const cli = join(root, 'dist', 'renderer', 'main.js');
    const planArgs = [cli, 'plan', '--base', base, '--head', head, '--no-registry-check', '--format', 'json'];
    const planMs: number[] = [];
    const startMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const plan = await timed(planArgs, dir);
      const report = JSON.parse(plan.stdout) as { tenants: Array<{ slug: string; files?: Array<{ status: string }> }> };
      const touched = report.tenants.filter((t) => t.files?.some((f) => f.status !== 'unchanged'));
      if (touched.length !== 1 || touched[0]!.slug !== changed)
        throw new Error(`plan bench: expected only ${changed} to change, got ${touched.map((t) => t.slug).join(', ') || 'none'}`);
      planMs.push(plan.ms);
      startMs.push((await timed([cli, '--help'], dir)).ms);
    }
    const ms = median(planMs);
    const start = median(startMs);
    return [
      benchRow({
        name: `flotilla plan, one tenant changed in ${BENCH_TENANTS} (whole CLI process)`,
        unit: 'ms',
        value: Math.round(ms),
        baseline: Math.round(start),
        ratio: Math.round((ms / start) * 100) / 100,
        target: `< ${TARGET_MS} ms`,
        met: ms < TARGET_MS,
      }),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
