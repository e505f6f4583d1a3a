// promote.yml cannot run here; it is read as YAML and held to what it promises:
// scheduled and on demand, least privilege, never racing publish, the history a
// rollback needs, and no event data pasted into the script.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const dir = join(import.meta.dirname, '../../.github/workflows');
const load = (name: string) => parse(readFileSync(join(dir, name), 'utf8'));
const promote = load('promote.yml');
const job = promote.jobs.promote;

describe('promote.yml', () => {
  it('runs on a schedule and on demand', () => {
    expect(Object.keys(promote.on).sort()).toEqual(['schedule', 'workflow_dispatch']);
    expect(promote.on.schedule[0].cron).toMatch(/^\S+ \S+ \S+ \S+ \S+$/);
  });

  it('grants nothing at the top level; the job may push, post statuses and open PRs, nothing more', () => {
    expect(promote.permissions).toEqual({});
    expect(job.permissions).toEqual({ contents: 'write', statuses: 'write', 'pull-requests': 'write' });
  });

  it('shares the publish concurrency group and never cancels a run halfway', () => {
    expect(promote.concurrency).toEqual(load('publish.yml').concurrency);
    expect(promote.concurrency['cancel-in-progress']).toBe(false);
  });

  it('checks out the full history (rollback reads earlier tenant files) and runs promote against the fleet repo', () => {
    const checkout = job.steps.find((s: { uses?: string }) => s.uses?.startsWith('actions/checkout@'));
    expect(checkout.with['fetch-depth']).toBe(0);
    // Through the action at the root (action.yml), as a user's fleet repo runs it.
    const step = job.steps.find((s: { uses?: string }) => s.uses === './');
    expect(step.with.command).toBe('promote');
    expect(step.with.args).toMatch(/^--repo \$\{\{ github\.server_url \}\}\/\$\{\{ github\.repository \}\}\.git/);
    expect(step.with.token).toContain('secrets.');
    expect(Object.keys(step.env)).toEqual(expect.arrayContaining(['FLOTILLA_GIT_TOKEN']));
  });
});
