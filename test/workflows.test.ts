// GitHub Actions cannot run here, so the workflow files are read as YAML and held
// to what they promise: triggers, least-privilege permissions, concurrency, commands.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';

interface Step {
  name?: string;
  uses?: string;
  run?: string;
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

const root = join(import.meta.dirname, '..');

function load(name: string): Workflow {
  const doc = parseDocument(readFileSync(join(root, '.github/workflows', name), 'utf8'), { uniqueKeys: true });
  expect(doc.errors, `${name} is valid YAML`).toEqual([]);
  return doc.toJS() as Workflow;
}

const runs = (job: Job) => job.steps.map((s) => s.run ?? '').filter(Boolean);
const stepRunning = (job: Job, text: string) => job.steps.find((s) => s.run?.includes(text));

describe.each(['ci.yml', 'preview.yml', 'publish.yml'])('%s', (file) => {
  const wf = load(file);

  it('grants nothing at the top level and only what each job declares', () => {
    expect(wf.permissions).toEqual({});
    for (const job of Object.values(wf.jobs)) {
      expect(job.permissions, 'every job states its permissions').toBeDefined();
      for (const level of Object.values(job.permissions ?? {})) expect(['read', 'write', 'none']).toContain(level);
    }
  });

  it('uses setup-node with the npm cache and installs with npm ci', () => {
    for (const job of Object.values(wf.jobs)) {
      const setup = job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
      expect(setup?.with).toMatchObject({ cache: 'npm' });
      expect(runs(job)).toContain('npm ci');
      expect(job.steps.some((s) => s.uses?.startsWith('actions/checkout@'))).toBe(true);
    }
  });

  it('never pastes event data into a shell script', () => {
    for (const job of Object.values(wf.jobs)) for (const r of runs(job)) expect(r).not.toMatch(/\$\{\{/);
  });
});

describe('ci.yml', () => {
  const wf = load('ci.yml');
  const job = wf.jobs.test!;

  it('runs on pushes to main and on pull requests', () => {
    expect(Object.keys(wf.on)).toEqual(expect.arrayContaining(['push', 'pull_request']));
    expect((wf.on.push as { branches: string[] }).branches).toEqual(['main']);
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

  it('builds, then runs check, plan against the PR base, and comment, in that order', () => {
    const order = ['npm run build', 'main.js check', 'main.js plan', 'main.js comment'].map((t) =>
      job.steps.findIndex((s) => s.run?.includes(t)),
    );
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(stepRunning(job, 'main.js plan')?.run).toMatch(/--base "\$BASE_SHA" --out plan\.md/);
    expect(job.env?.BASE_SHA).toBe('${{ github.event.pull_request.base.sha }}');
    expect(stepRunning(job, 'main.js comment')?.run).toMatch(/--pr "\$PR_NUMBER" --file plan\.md/);
  });

  it('still comments when the plan step failed on a missing tag, with the job token', () => {
    const comment = stepRunning(job, 'main.js comment')!;
    expect(comment.if).toContain('!cancelled()');
    expect(comment.env).toEqual({ GITHUB_TOKEN: '${{ secrets.GITHUB_TOKEN }}' });
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
    const publish = job.steps.find((s) => s.run?.includes('main.js publish'));
    expect(cache?.with?.path).toBe('.flotilla-cache');
    expect(publish?.run).toContain('--cache .flotilla-cache');
  });

  it('checks, then publishes this commit with a token that can push tenant branches', () => {
    const check = job.steps.findIndex((s) => s.run?.includes('main.js check'));
    const publish = job.steps.findIndex((s) => s.run?.includes('main.js publish'));
    expect(check).toBeGreaterThanOrEqual(0);
    expect(publish).toBeGreaterThan(check);
    const step = job.steps[publish]!;
    expect(step.run).toMatch(/--repo "\$FLEET_REPO" --commit "\$GITHUB_SHA"/);
    expect(step.env?.FLOTILLA_GIT_TOKEN).toMatch(/secrets\.FLOTILLA_PUBLISH_TOKEN \|\| secrets\.GITHUB_TOKEN/);
  });
});
