// `flotilla secret` through the CLI on a fleet checkout, with the real age CLI on the
// other side: `secret set` reads the value from standard input, render carries the
// ciphertext in the manifest, and `age -d -i <host identity>` (Debian's age, the key made
// by age-keygen) gives the value back. Then a host re-keyed: check refuses the stale
// secret naming tenant and key, rotate-recipients re-encrypts it with the admin identity,
// and the new host key decrypts it. No output ever holds the value.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readProcessStdin, type CliIo } from '../cli.js';
import { SettingError } from '../core/errors.js';
import { runCli } from '../main.js';

const execFileAsync = promisify(execFile);
const VALUE = 'relay-S3cret-from-stdin-4e1f';
const TENANT_FILE = 'fleet/tenants/acme.yaml';
const COMMIT = 'c'.repeat(40);

let root: string;
let keys: string;
/** Everything every command printed, for the leak check at the end. */
const printed: string[] = [];

async function keygen(name: string): Promise<{ file: string; recipient: string }> {
  const file = join(keys, `${name}.txt`);
  await execFileAsync('age-keygen', ['-o', file]);
  const { stdout } = await execFileAsync('age-keygen', ['-y', file]);
  return { file, recipient: stdout.trim() };
}

async function flotilla(argv: string[], stdin?: string | null): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: (s) => void (stdout += s),
    stderr: (s) => void (stderr += s),
    cwd: root,
    env: {},
    ...(stdin === null ? {} : { readStdin: async () => stdin ?? '' }),
  };
  const code = await runCli(['--fleet-dir', root, ...argv], io);
  printed.push(stdout, stderr);
  return { code, stdout, stderr };
}

async function ageDecrypt(identityFile: string, armored: string): Promise<string> {
  const file = join(keys, 'secret.age');
  await writeFile(file, armored);
  return (await execFileAsync('age', ['-d', '-i', identityFile, file])).stdout;
}

const manifestSecret = async (out: string) =>
  (JSON.parse(await readFile(join(root, out, 'acme', '.flotilla', 'manifest.json'), 'utf8')) as { encryptedSecrets?: Record<string, string> }).encryptedSecrets;

let host: { file: string; recipient: string };
let admin: { file: string; recipient: string };
let newHost: { file: string; recipient: string };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-secret-cli-'));
  keys = join(root, '.keys');
  await mkdir(keys);
  [host, admin, newHost] = await Promise.all([keygen('host'), keygen('admin'), keygen('new-host')]);
  await mkdir(join(root, 'fleet', 'tenants'), { recursive: true });
  await mkdir(join(root, 'templates'));
  await writeFile(
    join(root, 'fleet', 'fleet.yaml'),
    `defaults:\n  imageTag: v1\n  registry: 127.0.0.1:5000/flotilla\n  images:\n    app: app\n  domainSuffix: fleet.test\n  secrets: [APP_SECRET]\n  adminAgeRecipients:\n    - ${admin.recipient}\n`,
  );
  await writeFile(join(root, TENANT_FILE), `# acme: one host\nmode: managed\nsecrets:\n  - SMTP_PASSWORD # the relay's, issued to acme\nageRecipients:\n  - ${host.recipient}\n`);
  await writeFile(join(root, 'templates', 'docker-compose.yml.hbs'), 'services:\n  app:\n    image: app\n    environment:\n      SMTP_PASSWORD: ${SMTP_PASSWORD}\n');
  await writeFile(join(root, 'templates', 'env.hbs'), 'IMAGE_TAG={{imageTag}}\n');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('flotilla secret', () => {
  it('set reads the value from stdin and writes only ciphertext; render carries it; `age -d -i` decrypts it', async () => {
    const set = await flotilla(['secret', 'set', 'acme', 'SMTP_PASSWORD'], `${VALUE}\n`);
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/^acme: SMTP_PASSWORD set in fleet\/tenants\/acme\.yaml, encrypted to age1.*, age1.*; commit it/);
    const text = await readFile(join(root, TENANT_FILE), 'utf8');
    expect(text).toMatch(/^# acme: one host\nmode: managed\nsecrets:\n {2}- SMTP_PASSWORD # the relay's, issued to acme\n/);
    expect(text).toContain('encryptedSecrets:\n  SMTP_PASSWORD:\n');
    expect(text).not.toContain(VALUE);

    expect((await flotilla(['check'])).code).toBe(0);
    const render = await flotilla(['render', '--out', 'out', '--commit', COMMIT, '--repo', 'acme/fleet']);
    expect(render.code).toBe(0);
    const armored = (await manifestSecret('out'))!.SMTP_PASSWORD!;
    expect(armored).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----\n/);
    expect(await ageDecrypt(host.file, armored)).toBe(VALUE);
    expect(await ageDecrypt(admin.file, armored)).toBe(VALUE);
  });

  it('list shows names, shortened recipients and age, never a value', async () => {
    const list = await flotilla(['secret', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^TENANT +KEY +RECIPIENTS +SET\nacme +SMTP_PASSWORD +age1\S+…\S+, age1\S+…\S+ +\d{4}-\d\d-\d\d \(just now\)\n$/);
    expect((await flotilla(['secret', 'list', 'nobody'])).code).toBe(2);
  });

  it('refuses a value on argv, no stdin, an empty value, a terminal, and a key the fleet does not declare secret', async () => {
    const before = await readFile(join(root, TENANT_FILE), 'utf8');
    const argv = await flotilla(['secret', 'set', 'acme', 'SMTP_PASSWORD', 'hunter2-on-argv'], 'x');
    expect(argv.code).not.toBe(0);
    expect(argv.stderr).toMatch(/too many arguments/);
    const none = await flotilla(['secret', 'set', 'acme', 'SMTP_PASSWORD'], null);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('standard input');
    const empty = await flotilla(['secret', 'set', 'acme', 'SMTP_PASSWORD'], '\n');
    expect(empty.code).not.toBe(0);
    expect(empty.stderr).toContain('secret SMTP_PASSWORD: the value is empty');
    const undeclared = await flotilla(['secret', 'set', 'acme', 'DB_PASSWORD'], VALUE);
    expect(undeclared.code).toBe(2);
    expect(undeclared.stderr).toContain('DB_PASSWORD is not a secret acme declares; add it to fleet.yaml defaults.secrets or to fleet/tenants/acme.yaml secrets first');
    expect(await readFile(join(root, TENANT_FILE), 'utf8')).toBe(before);

    const tty = Object.assign(Readable.from([]), { isTTY: true }) as unknown as NodeJS.ReadStream;
    await expect(readProcessStdin(tty)).rejects.toThrow(SettingError);
    await expect(readProcessStdin(tty)).rejects.toThrow(/stdin: is a terminal; pipe the value in/);
    expect(await readProcessStdin(Readable.from([Buffer.from('abc'), Buffer.from('def\n')]) as unknown as NodeJS.ReadStream)).toBe('abcdef\n');
    await expect(readProcessStdin(Readable.from([Buffer.alloc(70 * 1024)]) as unknown as NodeJS.ReadStream)).rejects.toThrow(/more than 65536 bytes/);
  });

  it('a host re-keyed: check names tenant and key; rotate-recipients with the admin identity re-encrypts for the new key', async () => {
    const text = await readFile(join(root, TENANT_FILE), 'utf8');
    await writeFile(join(root, TENANT_FILE), text.replace(`  - ${host.recipient}\n`, `  - ${newHost.recipient}\n`));
    const check = await flotilla(['check']);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/fleet\/tenants\/acme\.yaml:\d+: encryptedSecrets\.SMTP_PASSWORD\.recipients: tenant acme: SMTP_PASSWORD is not encrypted to the tenant's current recipients/);

    const wrong = await flotilla(['secret', 'rotate-recipients', 'acme', '--identity', newHost.file]);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain('secret SMTP_PASSWORD cannot be decrypted');

    const rotate = await flotilla(['secret', 'rotate-recipients', 'acme', '--identity', admin.file]);
    expect(rotate.stderr).toBe('');
    expect(rotate.stdout).toBe('acme: re-encrypted SMTP_PASSWORD in fleet/tenants/acme.yaml; commit it and open a pull request\n');
    expect((await flotilla(['check'])).code).toBe(0);
    expect((await flotilla(['secret', 'rotate-recipients', 'acme', '--identity', admin.file])).stdout).toContain('nothing written');
    expect((await flotilla(['render', '--out', 'out2', '--commit', COMMIT, '--repo', 'acme/fleet'])).code).toBe(0);
    const armored = (await manifestSecret('out2'))!.SMTP_PASSWORD!;
    expect(await ageDecrypt(newHost.file, armored)).toBe(VALUE);
    await expect(ageDecrypt(host.file, armored)).rejects.toThrow(/no identity matched/);
  });

  it('rm removes the secret and the block; a second rm names what is set', async () => {
    const removed = await flotilla(['secret', 'rm', 'acme', 'SMTP_PASSWORD']);
    expect(removed.code).toBe(0);
    const text = await readFile(join(root, TENANT_FILE), 'utf8');
    expect(text).toBe(`# acme: one host\nmode: managed\nsecrets:\n  - SMTP_PASSWORD # the relay's, issued to acme\nageRecipients:\n  - ${newHost.recipient}\n`);
    const again = await flotilla(['secret', 'rm', 'acme', 'SMTP_PASSWORD']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('acme has no secret SMTP_PASSWORD set centrally (set: none)');
  });

  it('printed nothing of the value, ever', () => {
    expect(printed.join('\n')).not.toContain(VALUE.slice(0, 10));
  });
});
