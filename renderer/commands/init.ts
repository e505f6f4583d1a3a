// `flotilla init DIR`: start a fleet repo of your own from the package's scaffold
// (fleet/scaffold.ts does the work); never overwrites a file.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { fleetRoot, type CliIo } from '../cli.js';
import { ACTION_PLACEHOLDER, initFleetRepo } from '../fleet/scaffold.js';

interface InitCliOptions {
  action?: string;
}

export function registerInit(program: Command, io: CliIo): void {
  program
    .command('init')
    .description('start a fleet repo in DIR (created if missing): fleet/, templates/, workflows, README; refuses to overwrite any file')
    .argument('[dir]', 'folder of the new fleet repo (default: --fleet-dir, else the current directory)')
    .option('--action <ref>', `the Flotilla action the workflows use (default: the placeholder ${ACTION_PLACEHOLDER}, to set later)`)
    .action(async (dir: string | undefined, opts: InitCliOptions) => {
      const target = dir !== undefined ? resolve(io.cwd, dir) : fleetRoot(program, io);
      const result = await initFleetRepo(target, opts.action !== undefined ? { action: opts.action } : {});
      for (const file of result.files) io.stdout(`created ${file}\n`);
      io.stdout(`\nA fleet repo in ${target}. Next:\n`);
      io.stdout(`  flotilla --fleet-dir ${JSON.stringify(target)} check\n`);
      if (result.actionPlaceholder) io.stdout(`  set ${ACTION_PLACEHOLDER} in .github/workflows/*.yml to where the Flotilla action lives\n`);
      io.stdout('  set the registry in fleet/fleet.yaml and the tokens README.md names; then git init, commit and push\n');
    });
}
