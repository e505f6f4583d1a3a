// `flotilla status [--json]`: per tenant the desired tag, the head of its branch
// (one ls-refs on the fleet repo) and its Flotilla-Source, and the latest
// `flotilla/<slug>` commit status. Exits non-zero when any tenant failed. Without a
// token it still shows branches and published commits, with the statuses unavailable.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { TenantsFailedError } from '../core/errors.js';
import { loadFleet } from '../fleet/fleet.js';
import { fleetRoot, writeOutputFile, type CliIo } from '../cli.js';
import { forgeFromEnv, githubToken, resolveRepo } from '../forge-settings.js';
import { effectiveWaves } from '../rollout/rollout.js';
import { renderDashboardHtml } from '../status/dashboard.js';
import { collectFleetStatus, formatStatus, formatStatusJson } from '../status/status.js';
import { fleetUrl, gitStatusReads, type GitStatusReadsOptions } from '../status/status-reads.js';

interface StatusCliOptions {
  json?: boolean;
  html?: string;
  repo?: string;
  fleetUrl?: string;
}

export function registerStatus(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('show every tenant: desired tag, published commit, agent state and age; exit 1 when any failed')
    .option('--json', 'print JSON for scripts')
    .option('--html <file>', 'also write the fleet as one self-contained HTML page (failed tenants first, last rollout)')
    .option('--repo <owner/name>', 'repository on the forge holding the statuses (default: GITHUB_REPOSITORY or the origin URL)')
    .option('--fleet-url <url>', 'fleet git repository (default: FLOTILLA_FLEET_URL or the origin remote)')
    .action(async (opts: StatusCliOptions) => {
      const root = fleetRoot(program, io);
      const fleet = await loadFleet(root);
      const token = githubToken(io.env);
      const forge = token ? { forge: forgeFromEnv(io.env), repo: await resolveRepo(opts.repo, io.env, root) } : undefined;
      const url = await fleetUrl(opts.fleetUrl, io.env, root);
      const gitdir = await mkdtemp(join(tmpdir(), 'flotilla-status-'));
      let status;
      try {
        const readsOpts: GitStatusReadsOptions = forge
          ? { url, gitdir, forge }
          : { url, gitdir, statusesUnavailable: 'no FLOTILLA_GITHUB_TOKEN or GITHUB_TOKEN set' };
        // The fleet repo may take its own token (as publish and promote do); else the forge's.
        const gitToken = io.env.FLOTILLA_GIT_TOKEN || token;
        if (gitToken) readsOpts.auth = { token: gitToken };
        status = await collectFleetStatus(fleet, gitStatusReads(readsOpts));
      } finally {
        await rm(gitdir, { recursive: true, force: true });
      }
      const tty = (io as CliIo & { isTTY?: boolean }).isTTY ?? process.stdout.isTTY === true;
      io.stdout(opts.json ? formatStatusJson(status) : formatStatus(status, { tty }));
      if (opts.html) {
        await writeOutputFile(io, '--html', opts.html, renderDashboardHtml(status, { generatedAt: new Date(), waves: effectiveWaves(fleet) }));
      }
      const failed = status.tenants.filter((t) => t.verdict === 'failed').map((t) => t.slug);
      if (failed.length > 0) throw new TenantsFailedError(failed);
    });
}
