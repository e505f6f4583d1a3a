// `flotilla plan --base REF [--head REF]`: render both sides of a change on a local
// checkout and report, per tenant and per file, what it does; exit 1 when an image
// tag the change moves to is missing from its registry.
import { Option, type Command } from 'commander';
import { SettingError } from '../core/errors.js';
import { addPlanOptions, fleetRoot, writeOutputFile, type CliIo, type PlanCliOptions } from '../cli.js';
import { tagCheckFailure, type PlanReport } from '../plan/plan.js';
import { renderPlanJson, renderPlanMarkdown } from '../plan/plan-markdown.js';
import { planRepo, type PlanRepoOptions } from '../plan/plan-revisions.js';
import { registryCheckFor } from '../plan/registry.js';
import { createProgress } from '../progress.js';

export function registerPlan(program: Command, io: CliIo): void {
  addPlanOptions(
    program.command('plan').description('show what a change does to every tenant: files, env, coverage, blast radius, tag check'),
    true,
  )
    .addOption(new Option('--format <format>', 'output format').choices(['markdown', 'json']).default('markdown'))
    .option('--out <file>', 'write the plan to this file instead of stdout')
    .action(async (opts: PlanCliOptions) => {
      const root = fleetRoot(program, io);
      if (!opts.base) throw new SettingError('--base', 'is required');
      const planOpts: PlanRepoOptions = { root, base: opts.base };
      if (opts.head) planOpts.head = opts.head;
      if (opts.registryCheck) planOpts.registryCheck = registryCheckFor(io.env);
      // A bar on a person's terminal only (never in CI logs or when piped), on stderr.
      const progress = createProgress(process.stderr, io.env);
      planOpts.onProgress = (phase, done, total, slug) => progress.update(phase, done, total, slug);
      let report: PlanReport;
      try {
        report = await planRepo(planOpts);
      } finally {
        progress.stop();
      }
      const text = opts.format === 'json' ? renderPlanJson(report) : renderPlanMarkdown(report);
      if (opts.out) await writeOutputFile(io, '--out', opts.out, text);
      else io.stdout(text);
      const failure = tagCheckFailure(report);
      if (failure) throw failure;
    });
}
