// `flotilla render`: write rendered tenant trees to a scratch directory, one
// folder per tenant, to look at or diff by hand (the seeds' render-for-instance).
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { SettingError } from '../core/errors.js';
import { loadFleet } from '../fleet/fleet.js';
import { loadTemplates, renderFleet } from '../render/render.js';
import { writeRenderedTrees } from '../render/render-out.js';
import { resolveSource } from '../repo.js';
import { fleetRoot, type CliIo } from '../cli.js';

interface RenderOptions {
  tenant?: string[];
  out: string;
  commit?: string;
  repo?: string;
}

export function registerRender(program: Command, io: CliIo): void {
  program
    .command('render')
    .description('render tenants into a scratch directory, one folder per tenant')
    .option('--tenant <slug...>', 'render only these tenants (default: all, paused ones included)')
    .requiredOption('--out <dir>', 'scratch directory to write into')
    .option('--commit <sha>', 'source commit to name in headers and manifests (default: HEAD of --root)')
    .option('--repo <url>', 'source repo to name in manifests (default: origin URL of --root)')
    .action(async (opts: RenderOptions) => {
      const root = fleetRoot(program, io);
      const outDir = resolve(io.cwd, opts.out);
      if (outDir === root) throw new SettingError('--out', 'must not be the repository root; give a scratch directory');
      const [fleet, templates, source] = await Promise.all([
        loadFleet(root),
        loadTemplates(join(root, 'templates')),
        resolveSource(root, opts),
      ]);
      const rendered = renderFleet(fleet, templates, source, opts.tenant ? { tenants: opts.tenant } : {});
      await writeRenderedTrees(outDir, rendered);
      for (const t of rendered)
        io.stdout(`${t.slug}${t.paused ? ' (paused)' : ''}: ${t.files.length} files -> ${join(outDir, t.slug)}\n`);
    });
}
