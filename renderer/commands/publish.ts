// `flotilla publish`: render every tenant and commit each tree to its branch
// (tenants/<slug>), only where the render changed; paused tenants are skipped.
// A fleet with rollout waves publishes one wave per step (rollout/promote.ts);
// `--all-waves` (alias `--now`) publishes every tenant at once, for emergencies.
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { sanitizeUrl } from '../core/git.js';
import { readSigningKey } from '../core/signing.js';
import { loadFleet } from '../fleet/fleet.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { forgeFromEnv, githubToken, resolveRepo } from '../forge-settings.js';
import { createProgress } from '../progress.js';
import { publishFleet, type PublishSummary } from '../publish/publish-fleet.js';
import { formatStep, rolloutStep, type RolloutStepOptions } from '../rollout/promote.js';

interface PublishCliOptions {
  repo: string;
  token?: string;
  cache?: string;
  commit?: string;
  sourceRepo?: string;
  allWaves?: boolean;
  now?: boolean;
  githubRepo?: string;
}

export function registerPublish(program: Command, io: CliIo): void {
  program
    .command('publish')
    .description('render every tenant and commit each tree to its tenant branch, only where it changed; then push')
    .requiredOption('--repo <url>', 'fleet git repository (http/https) holding the tenant branches')
    .option('--token <token>', 'token for pushing (default: $FLOTILLA_GIT_TOKEN or $GITHUB_TOKEN)')
    .option('--cache <dir>', 'bare repository kept between runs (default: a folder under the system temp dir)')
    .option('--commit <sha>', 'source commit to name (default: HEAD of --root)')
    .option('--source-repo <url>', 'source repository to name in manifests (default: origin URL of --root)')
    .option('--all-waves', 'publish every tenant now, ignoring rollout waves (emergencies)')
    .option('--now', 'the same as --all-waves')
    .option('--github-repo <owner/name>', 'with a forge token set: read agent statuses here to publish a later wave')
    .option('--signing-key <file>', 'Ed25519 key (ssh-keygen -t ed25519, unencrypted) to sign tenant commits with')
    .action(async (opts: PublishCliOptions & { signingKey?: string }) => {
      const root = fleetRoot(program, io);
      const token = opts.token ?? io.env.FLOTILLA_GIT_TOKEN ?? io.env.GITHUB_TOKEN;
      const cacheDir = opts.cache ? resolve(io.cwd, opts.cache) : join(tmpdir(), 'flotilla-publish-cache');
      const source: { repo?: string; commit?: string } = {};
      if (opts.commit) source.commit = opts.commit;
      if (opts.sourceRepo) source.repo = opts.sourceRepo;
      const fleet = await loadFleet(root);
      if (fleet.waves.length > 0 && !opts.allWaves && !opts.now) {
        const step: RolloutStepOptions = { root, repoUrl: opts.repo, ...(token ? { token } : {}), cacheDir, source };
        if (opts.signingKey) step.signingKey = await readSigningKey(resolve(io.cwd, opts.signingKey));
        // Statuses are only read: without them no tenant has reported, so only a first wave goes.
        if (githubToken(io.env)) step.forge = { forge: forgeFromEnv(io.env), repo: await resolveRepo(opts.githubRepo, io.env, root) };
        io.stdout(formatStep(await rolloutStep(step)));
        return;
      }
      // A bar on stderr for a person at a terminal; nothing in CI or when piped.
      const progress = createProgress(process.stderr, io.env);
      let summary: PublishSummary;
      try {
        summary = await publishFleet(root, {
          repoUrl: opts.repo,
          ...(token ? { token } : {}),
          cacheDir,
          source,
          onProgress: (e) => progress.update(e.phase, e.done, e.total, e.slug),
          ...(opts.signingKey ? { signingKey: await readSigningKey(resolve(io.cwd, opts.signingKey)) } : {}),
        });
      } finally {
        progress.stop();
      }
      for (const slug of summary.committed) io.stdout(`${slug}: committed\n`);
      io.stdout(
        `published to ${sanitizeUrl(opts.repo)}: ${summary.committed.length} committed, ${summary.unchanged.length} unchanged` +
          `${summary.paused.length ? `, paused (skipped): ${summary.paused.join(', ')}` : ''}` +
          `${summary.pushed ? '' : '; nothing to push'}\n`,
      );
    });
}
