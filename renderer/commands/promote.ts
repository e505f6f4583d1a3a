// `flotilla promote`: one step of the rollout (rollout/promote.ts) with the forge
// writes (GitHub, GHE, Gitea, Forgejo): the `flotilla/rollout` status and, on a halt,
// the rollback PR. A scheduled workflow runs it, so no job sits waiting out a soak time.
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { readSigningKey } from '../core/signing.js';
import { fleetRoot, type CliIo } from '../cli.js';
import { forgeFromEnv, resolveRepo } from '../forge-settings.js';
import { formatStep, rolloutStep } from '../rollout/promote.js';

interface PromoteCliOptions {
  repo: string;
  githubRepo?: string;
  token?: string;
  cache?: string;
  commit?: string;
  sourceRepo?: string;
  rollback: boolean;
  dryRun?: boolean;
  signingKey?: string;
}

export function registerPromote(program: Command, io: CliIo): void {
  program
    .command('promote')
    .description('check the current wave of the rollout and publish the next one when it succeeded and soaked; halt on failure')
    .requiredOption('--repo <url>', 'fleet git repository (http/https) holding the tenant branches')
    .option('--github-repo <owner/name>', 'repository on the forge holding the statuses (default: GITHUB_REPOSITORY or the origin URL)')
    .option('--token <token>', 'token for pushing (default: $FLOTILLA_GIT_TOKEN or $GITHUB_TOKEN)')
    .option('--cache <dir>', 'bare repository kept between runs (default: a folder under the system temp dir)')
    .option('--commit <sha>', 'source commit being rolled out (default: HEAD of --root)')
    .option('--source-repo <url>', 'source repository to name in manifests (default: origin URL of --root)')
    .option('--no-rollback', 'on a halt, do not open the rollback pull request')
    .option('--dry-run', 'say what the next step is; publish and post nothing')
    .option('--signing-key <file>', 'Ed25519 key (ssh-keygen -t ed25519, unencrypted) to sign tenant commits with')
    .action(async (opts: PromoteCliOptions) => {
      const root = fleetRoot(program, io);
      const forge = forgeFromEnv(io.env);
      const repo = await resolveRepo(opts.githubRepo, io.env, root);
      const token = opts.token ?? io.env.FLOTILLA_GIT_TOKEN ?? io.env.GITHUB_TOKEN;
      const source: { repo?: string; commit?: string } = {};
      if (opts.commit) source.commit = opts.commit;
      if (opts.sourceRepo) source.repo = opts.sourceRepo;
      const step = await rolloutStep({
        root,
        repoUrl: opts.repo,
        ...(token ? { token } : {}),
        cacheDir: opts.cache ? resolve(io.cwd, opts.cache) : join(tmpdir(), 'flotilla-publish-cache'),
        source,
        forge: { forge, repo },
        writeForge: true,
        ...(opts.rollback ? {} : { autoRollback: false }),
        ...(opts.dryRun ? { dryRun: true } : {}),
        ...(opts.signingKey ? { signingKey: await readSigningKey(resolve(io.cwd, opts.signingKey)) } : {}),
      });
      io.stdout(formatStep(step));
    });
}
