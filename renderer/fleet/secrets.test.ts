// Secrets set centrally, the renderer's side: the tenant-file edits keep every byte
// outside the encryptedSecrets block; loadFleet takes the shapes and refuses a plaintext,
// an undeclared key and a private key given as a recipient without echoing them; the
// ciphertext (and only it) reaches the manifest; the plan names keys and never shows a
// value or ciphertext; check refuses ciphertext not encrypted to the current recipients.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetConfigError } from '../core/errors.js';
import { MANIFEST_PATH } from '../core/manifest.js';
import { decryptSecret, generateAgeIdentity, sealSecret, type AgeKeyPair, type EncryptedSecret } from '../core/secrets.js';
import { buildPlan } from '../plan/plan.js';
import { renderPlanMarkdown } from '../plan/plan-markdown.js';
import { compileTemplates, renderFleet } from '../render/render.js';
import { checkRepo } from './check.js';
import { loadFleetFromFiles } from './fleet.js';
import { ageOf, formatSecretList, listSecrets, removeSecretFromText, setSecretInText } from './secrets.js';

const VALUE = 'smtp-Passw0rd-7c1e9a4b';
const OTHER_VALUE = 'second-value-55aa77cc';

let host: AgeKeyPair;
let admin: AgeKeyPair;
let newHost: AgeKeyPair;
let sealed: EncryptedSecret;
let sealedAgain: EncryptedSecret;

beforeAll(async () => {
  [host, admin, newHost] = await Promise.all([generateAgeIdentity(), generateAgeIdentity(), generateAgeIdentity()]);
  sealed = await sealSecret('SMTP_PASSWORD', VALUE, [host.recipient, admin.recipient], new Date('2026-12-01T10:00:00Z'));
  sealedAgain = await sealSecret('SMTP_PASSWORD', OTHER_VALUE, [host.recipient, admin.recipient], new Date('2026-12-02T10:00:00Z'));
});

const fleetYaml = () => `defaults:
  imageTag: v1
  registry: 127.0.0.1:5000/flotilla
  images:
    app: app
  domainSuffix: fleet.test
  secrets:
    - APP_SECRET
  # The operators' key: secrets can be re-encrypted without the hosts.
  adminAgeRecipients:
    - ${admin.recipient}
`;

const tenantYaml = (extra = '') => `# acme's mail relay is set centrally.
mode: managed   # provisioned by Flotilla
secrets:
  - SMTP_PASSWORD
ageRecipients:
  - ${host.recipient}   # acme-1, keygen 2026-12-01
${extra}labels: {tier: gold}
`;

const TEMPLATES = compileTemplates(
  new Map([
    ['docker-compose.yml.hbs', 'services:\n  app:\n    image: app\n    environment:\n      SMTP_PASSWORD: ${SMTP_PASSWORD}\n'],
    ['env.hbs', 'IMAGE_TAG={{imageTag}}\n'],
  ]),
);

function files(tenant: string, fleet = fleetYaml()): Map<string, string> {
  return new Map([
    ['fleet/fleet.yaml', fleet],
    ['fleet/tenants/acme.yaml', tenant],
  ]);
}

function configError(run: () => unknown): FleetConfigError {
  try {
    run();
  } catch (e) {
    if (e instanceof FleetConfigError) return e;
    throw e;
  }
  throw new Error('no FleetConfigError');
}

describe('editing the tenant file', () => {
  it('adds the block at the end, every byte before it kept, and the fleet loads it', () => {
    const before = tenantYaml();
    const after = setSecretInText(before, 'fleet/tenants/acme.yaml', 'SMTP_PASSWORD', sealed);
    expect(after.startsWith(before)).toBe(true);
    expect(after.slice(before.length)).toMatch(/^encryptedSecrets:\n  SMTP_PASSWORD:\n    recipients:\n      - age1/);
    expect(after).toContain(`setAt: "2026-12-01T10:00:00.000Z"`);
    expect(after).toContain('    ciphertext: |\n      -----BEGIN AGE ENCRYPTED FILE-----\n');
    const tenant = loadFleetFromFiles(files(after)).tenants[0]!;
    expect(tenant.encryptedSecrets).toEqual({ SMTP_PASSWORD: sealed });
    expect(tenant.ageRecipients).toEqual([host.recipient]);
  });

  it('replaces a key in place and keeps the comments and keys around and inside the block', async () => {
    const before = tenantYaml('# set with flotilla secret set\nencryptedSecrets:\n  # the relay\n  SMTP_PASSWORD: {}\n');
    const after = setSecretInText(before, 'fleet/tenants/acme.yaml', 'SMTP_PASSWORD', sealedAgain);
    const head = before.slice(0, before.indexOf('encryptedSecrets:'));
    expect(after.startsWith(head)).toBe(true);
    expect(after).toContain('encryptedSecrets:\n  # the relay\n  SMTP_PASSWORD:\n');
    expect(after.endsWith('labels: {tier: gold}\n')).toBe(true);
    expect(after.match(/# set with flotilla secret set/g)).toHaveLength(1);
    const tenant = loadFleetFromFiles(files(after)).tenants[0]!;
    expect(await decryptSecret('SMTP_PASSWORD', tenant.encryptedSecrets.SMTP_PASSWORD!.ciphertext, [host.identity])).toBe(OTHER_VALUE);
  });

  it('removes a key, and the block once it is empty, leaving the rest as it was', () => {
    const before = tenantYaml();
    const one = setSecretInText(before, 'f', 'SMTP_PASSWORD', sealed);
    const two = setSecretInText(one, 'f', 'APP_SECRET', sealedAgain);
    expect(Object.keys(loadFleetFromFiles(files(two)).tenants[0]!.encryptedSecrets)).toEqual(['APP_SECRET', 'SMTP_PASSWORD']);
    const back = removeSecretFromText(two, 'f', 'APP_SECRET');
    expect(back).toBe(one);
    expect(removeSecretFromText(back, 'f', 'SMTP_PASSWORD')).toBe(before);
  });
});

describe('loadFleet', () => {
  it('refuses a plaintext secret, naming file, key and line, never the value', () => {
    const e = configError(() => loadFleetFromFiles(files(tenantYaml(`encryptedSecrets:\n  SMTP_PASSWORD: ${VALUE}\n`))));
    expect(e.message).toMatch(/fleet\/tenants\/acme\.yaml:\d+: encryptedSecrets\.SMTP_PASSWORD: holds a plaintext value/);
    expect(e.message).not.toContain(VALUE.slice(0, 8));
    const nested = configError(() => loadFleetFromFiles(files(tenantYaml(`encryptedSecrets:\n  SMTP_PASSWORD:\n    recipients: [${host.recipient}]\n    setAt: "2026-12-01T10:00:00Z"\n    ciphertext: ${VALUE}\n`))));
    expect(nested.message).toContain('encryptedSecrets.SMTP_PASSWORD.ciphertext: ciphertext is not age armor');
    expect(nested.message).not.toContain(VALUE.slice(0, 8));
    const whole = configError(() => loadFleetFromFiles(files(tenantYaml(`encryptedSecrets: ${VALUE}\n`))));
    expect(whole.message).toContain('encryptedSecrets: must be a mapping');
    expect(whole.message).not.toContain(VALUE.slice(0, 8));
  });

  it('refuses a secret for a key the tenant does not declare', () => {
    const text = setSecretInText(tenantYaml(), 'f', 'NOT_DECLARED', sealed);
    const e = configError(() => loadFleetFromFiles(files(text)));
    expect(e.message).toContain('encryptedSecrets.NOT_DECLARED: NOT_DECLARED is not a secret this tenant declares');
  });

  it('refuses a private key given as a recipient without echoing it, and a value that is no recipient', () => {
    const e = configError(() => loadFleetFromFiles(files(tenantYaml().replace(host.recipient, host.identity))));
    expect(e.message).toMatch(/ageRecipients\[0\]: is an age private key/);
    expect(e.message).not.toContain(host.identity.slice(16));
    const f = configError(() => loadFleetFromFiles(files(tenantYaml(), fleetYaml().replace(admin.recipient, 'ssh-ed25519'))));
    expect(f.message).toMatch(/fleet\/fleet\.yaml:\d+: defaults\.adminAgeRecipients\[0\]: "ssh-ed25519" is not an age recipient/);
  });

  it('loads a ciphertext to stale recipients (check refuses it, not every command)', () => {
    const rekeyed = setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed).replace(`  - ${host.recipient}   #`, `  - ${newHost.recipient}   #`);
    expect(loadFleetFromFiles(files(rekeyed)).tenants[0]!.encryptedSecrets.SMTP_PASSWORD).toEqual(sealed);
  });
});

describe('render and plan', () => {
  it('puts the ciphertext, and nothing of the value, into the manifest', () => {
    const fleet = loadFleetFromFiles(files(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed)));
    const [acme] = renderFleet(fleet, TEMPLATES, { repo: 'acme/fleet', commit: 'a'.repeat(40) });
    expect(acme!.manifest.encryptedSecrets).toEqual({ SMTP_PASSWORD: sealed.ciphertext });
    expect(acme!.manifest.secrets).toEqual(['APP_SECRET', 'SMTP_PASSWORD']);
    const manifestText = acme!.files.find((f) => f.path === MANIFEST_PATH)!.content;
    expect(JSON.parse(manifestText).encryptedSecrets.SMTP_PASSWORD).toBe(sealed.ciphertext);
    for (const f of acme!.files) expect(f.content).not.toContain(VALUE);
  });

  it('shows `KEY: secret added | changed | removed`, never a value or any of the ciphertext', async () => {
    const render = (text: string) => {
      const fleet = loadFleetFromFiles(files(text));
      return { fleet, rendered: renderFleet(fleet, TEMPLATES, { repo: 'acme/fleet', commit: 'a'.repeat(40) }) };
    };
    const none = render(tenantYaml());
    const one = render(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed));
    const changed = render(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealedAgain));
    const lines = async (base: typeof none, head: typeof none) => {
      const report = await buildPlan({ base: base.rendered, head: head.rendered, fleet: head.fleet });
      const markdown = renderPlanMarkdown(report);
      const json = JSON.stringify(report);
      for (const text of [markdown, json]) {
        expect(text).not.toContain(VALUE);
        for (const s of [sealed, sealedAgain])
          for (const line of s.ciphertext.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'))) expect(text).not.toContain(line.slice(0, 16));
      }
      expect(report.tenants[0]!.files.every((f) => f.status === 'unchanged')).toBe(true);
      return { change: report.tenants[0]!.change, secrets: report.tenants[0]!.centralSecrets, markdown };
    };
    const added = await lines(none, one);
    expect(added.change).toBe('changed');
    expect(added.secrets).toEqual([{ key: 'SMTP_PASSWORD', change: 'added' }]);
    expect(added.markdown).toContain('- `SMTP_PASSWORD`: secret added');
    // From then on the host no longer generates it.
    expect(added.markdown).toContain('| secrets generated on the host | `APP_SECRET`<br>`SMTP_PASSWORD` | `APP_SECRET` |');
    expect((await lines(one, changed)).markdown).toContain('- `SMTP_PASSWORD`: secret changed');
    expect((await lines(changed, none)).markdown).toContain('- `SMTP_PASSWORD`: secret removed');
    expect((await lines(one, one)).change).toBe('unchanged');
  });
});

describe('flotilla check', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'flotilla-secrets-check-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function checkOf(tenant: string, fleet = fleetYaml()): Promise<string> {
    for (const [path, text] of [...files(tenant, fleet), ['templates/env.hbs', 'IMAGE_TAG={{imageTag}}\n'] as const]) {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    }
    return checkRepo(root).then(
      (s) => `ok ${s.tenants}`,
      (e: Error) => e.message,
    );
  }

  it('passes a secret encrypted to the tenant and the admins', async () => {
    expect(await checkOf(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed))).toBe('ok 1');
  });

  it('refuses ciphertext not encrypted to the current recipients, naming tenant, key and line', async () => {
    const rekeyed = setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed).replace(`  - ${host.recipient}   #`, `  - ${newHost.recipient}   #`);
    const message = await checkOf(rekeyed);
    expect(message).toMatch(/^fleet\/tenants\/acme\.yaml:\d+: encryptedSecrets\.SMTP_PASSWORD\.recipients: tenant acme: SMTP_PASSWORD is not encrypted to the tenant's current recipients: not encrypted to age1/);
    expect(message).toContain('flotilla secret rotate-recipients');
    const noAdmin = await checkOf(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed), fleetYaml().replace(/  adminAgeRecipients:\n.*\n/, ''));
    expect(noAdmin).toMatch(/tenant acme: SMTP_PASSWORD is not encrypted to the tenant's current recipients: still encrypted to age1.*, no longer a recipient/);
  });

  it('refuses a plaintext secret naming the file and key, never the value', async () => {
    const message = await checkOf(tenantYaml(`encryptedSecrets:\n  SMTP_PASSWORD: "${VALUE}"\n`));
    expect(message).toMatch(/fleet\/tenants\/acme\.yaml:\d+: encryptedSecrets\.SMTP_PASSWORD: holds a plaintext value/);
    expect(message).not.toContain(VALUE.slice(0, 8));
  });

  it('refuses a recipient whose checksum is wrong', async () => {
    const broken = `${host.recipient.slice(0, -1)}${host.recipient.endsWith('q') ? 'p' : 'q'}`;
    const message = await checkOf(tenantYaml().replace(host.recipient, broken));
    expect(message).toMatch(/fleet\/tenants\/acme\.yaml:\d+: ageRecipients\[0\]: .* is not a valid age recipient \(bad checksum or key\)/);
  });
});

describe('secret list', () => {
  it('shows names, shortened recipients and age; never values or ciphertext', () => {
    const fleet = loadFleetFromFiles(files(setSecretInText(tenantYaml(), 'f', 'SMTP_PASSWORD', sealed)));
    const text = formatSecretList(listSecrets(fleet), new Date('2026-12-04T10:00:00Z'));
    expect(text).toMatch(/^TENANT +KEY +RECIPIENTS +SET\nacme +SMTP_PASSWORD +age1.{8}….{8}, age1.{8}….{8} +2026-12-01 \(3 days ago\)\n$/);
    expect(text).not.toContain(host.recipient);
    expect(text).not.toContain(sealed.ciphertext.split('\n')[1]!.slice(0, 16));
    expect(ageOf('2026-12-04T09:59:30Z', new Date('2026-12-04T10:00:00Z'))).toBe('just now');
    expect(ageOf('2026-12-04T07:00:00Z', new Date('2026-12-04T10:00:00Z'))).toBe('3 hours ago');
  });
});
