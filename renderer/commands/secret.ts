// `flotilla secret set | rm | list | rotate-recipients`: secrets set centrally, stored
// age-encrypted in the tenant file (fleet/secrets.ts does the work). A value comes from
// standard input only, never from argv, and is never printed.
import type { Command } from 'commander';
import { SettingError } from '../core/errors.js';
import { checkSecretValue, secretValueFromInput, showRecipient } from '../core/secrets.js';
import { fleetRoot, readInputFile, type CliIo } from '../cli.js';
import { loadFleet } from '../fleet/fleet.js';
import { formatSecretList, listSecrets, removeSecret, rotateRecipients, setSecret } from '../fleet/secrets.js';

export function registerSecret(program: Command, io: CliIo): void {
  const secret = program
    .command('secret')
    .description('secrets set centrally: age-encrypted in fleet/tenants/<slug>.yaml to the tenant host(s) and the admins; only the host decrypts them');

  secret
    .command('set')
    .description('encrypt the value read from standard input (never argv) for the tenant and write it into its file')
    .argument('<tenant>', 'tenant slug')
    .argument('<key>', 'the env key; the fleet must declare it secret (defaults.secrets or the tenant secrets)')
    .action(async (slug: string, key: string) => {
      if (!io.readStdin) throw new SettingError('stdin', 'this command reads the value from standard input, and there is none');
      const value = checkSecretValue(key, secretValueFromInput(await io.readStdin()));
      const result = await setSecret({ root: fleetRoot(program, io), slug, key, value });
      io.stdout(
        `${result.tenant}: ${result.key} ${result.replaced ? 'replaced' : 'set'} in ${result.file}, encrypted to ${result.entry.recipients.map(showRecipient).join(', ')}; commit it and open a pull request\n`,
      );
    });

  secret
    .command('rm')
    .description("remove the tenant's secret for the key from its file (the host keeps the value it has)")
    .argument('<tenant>', 'tenant slug')
    .argument('<key>', 'the env key')
    .action(async (slug: string, key: string) => {
      const result = await removeSecret({ root: fleetRoot(program, io), slug, key });
      io.stdout(`${slug}: ${key} removed from ${result.file}\n`);
    });

  secret
    .command('list')
    .description('names, recipients and age of the secrets set centrally; never values')
    .argument('[tenant]', 'one tenant (default: all)')
    .action(async (slug: string | undefined) => {
      const fleet = await loadFleet(fleetRoot(program, io), { secretEntries: 'lenient' });
      io.stdout(formatSecretList(listSecrets(fleet, slug)));
    });

  secret
    .command('rotate-recipients')
    .description("re-encrypt the tenant's secrets to its current ageRecipients plus the admins, decrypting with an admin identity")
    .argument('<tenant>', 'tenant slug')
    .requiredOption('--identity <file>', 'an age identity file whose recipient is in fleet.yaml defaults.adminAgeRecipients')
    .option('--all', 're-encrypt every secret, not only those whose recipients are not the current ones')
    .action(async (slug: string, opts: { identity: string; all?: boolean }) => {
      const identityText = await readInputFile(io, '--identity', opts.identity);
      const result = await rotateRecipients({ root: fleetRoot(program, io), slug, identityText, identityFile: opts.identity, all: opts.all ?? false });
      if (result.rotated.length === 0) io.stdout(`${slug}: every secret is already encrypted to the current recipients; nothing written\n`);
      else io.stdout(`${slug}: re-encrypted ${result.rotated.join(', ')} in ${result.file}; commit it and open a pull request\n`);
    });
}
