// `flotilla check`: validate fleet/ and render every tenant in memory, listing
// every problem found rather than the first (fleet/check.ts).
import type { Command } from 'commander';
import { fleetRoot, type CliIo } from '../cli.js';
import { checkRepo } from '../fleet/check.js';

export function registerCheck(program: Command, io: CliIo): void {
  program
    .command('check')
    .description('validate fleet/ and render every tenant in memory; exit 1 listing every problem')
    .action(async () => {
      const root = fleetRoot(program, io);
      const s = await checkRepo(root);
      io.stdout(`ok: ${s.tenants} tenants (${s.paused} paused), ${s.files} files rendered\n`);
    });
}
