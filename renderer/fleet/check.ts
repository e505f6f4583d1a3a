// What `flotilla check` finds: fleet/ validated and every tenant rendered in memory,
// every problem listed rather than the first, and one broken template reported once.
import { resolve } from 'node:path';
import { AgeRecipientError, FleetConfigError, FlotillaError, ProblemListError, RenderedOutputError, TemplateError, type ConfigProblem } from '../core/errors.js';
import { checkAgeRecipients, checkTenantSecrets } from '../core/secrets.js';
import { FLEET_FILE, isRecipientDrift, loadFleetFromFiles, readFleetFiles, YamlSource, type Fleet } from './fleet.js';
import { loadTemplates, renderFleetCollecting, type TemplateSet } from '../render/render.js';

export interface CheckSummary {
  tenants: number;
  paused: number;
  files: number;
}

const SHOWN_TENANTS = 5;

function tenantList(slugs: string[]): string {
  const shown = slugs.slice(0, SHOWN_TENANTS).join(', ');
  return slugs.length > SHOWN_TENANTS ? `${shown} and ${slugs.length - SHOWN_TENANTS} more` : shown;
}

/**
 * One broken template fails every tenant the same way: report it once, naming
 * the tenants, instead of a thousand identical lines.
 */
export function groupRenderErrors(errors: FlotillaError[]): FlotillaError[] {
  const groups = new Map<string, { first: FlotillaError; tenants: string[] }>();
  for (const e of errors) {
    let key: string;
    if (e instanceof TemplateError) key = `T\0${e.template}\0${e.line}\0${e.detail}`;
    else if (e instanceof RenderedOutputError) key = `R\0${e.file}\0${e.detail}`;
    else key = `X\0${e.message}`;
    const tenant = e instanceof TemplateError || e instanceof RenderedOutputError ? e.tenant : '';
    const group = groups.get(key);
    if (group) group.tenants.push(tenant);
    else groups.set(key, { first: e, tenants: [tenant] });
  }
  return [...groups.values()].map(({ first, tenants }) => {
    if (tenants.length === 1) return first;
    if (first instanceof TemplateError)
      return new TemplateError(first.template, tenantList(tenants), first.detail, first.line, first.variable);
    if (first instanceof RenderedOutputError) return new RenderedOutputError(first.file, tenantList(tenants), first.detail);
    return first;
  });
}

/**
 * What check holds against secrets set centrally beyond loadFleet (which already refuses a
 * plaintext, malformed or undeclared entry): every recipient is a valid age key (checksum,
 * through the age library), and every ciphertext is encrypted to the tenant's current
 * recipients plus the fleet's admin recipients. Each problem names the tenant file, the key
 * path (so the key) and its line; none holds a value or ciphertext.
 */
export async function secretProblems(fleet: Fleet, files: Map<string, string>): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const sources = new Map<string, YamlSource>();
  const lineOf = (file: string, keyPath: string): number | undefined => {
    const text = files.get(file);
    if (text === undefined) return undefined;
    let src = sources.get(file);
    if (!src) sources.set(file, (src = new YamlSource(file, text)));
    const at = keyPath.split(/\.|\[(\d+)\]/).filter((p) => p !== undefined && p !== '').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    return src.lineOf(at);
  };
  const recipientsOf = async (file: string, list: string[], where: string) => {
    for (let i = 0; i < list.length; i++) {
      try {
        await checkAgeRecipients([list[i]!], `${where}[${i}]`);
      } catch (e) {
        if (!(e instanceof AgeRecipientError)) throw e;
        problems.push({ file, keyPath: `${where}[${i}]`, line: lineOf(file, `${where}[${i}]`), message: `${e.shown} ${e.detail}` });
      }
    }
  };
  await recipientsOf(FLEET_FILE, fleet.defaults.adminAgeRecipients, 'defaults.adminAgeRecipients');
  for (const tenant of fleet.tenants) {
    await recipientsOf(tenant.file, tenant.ageRecipients, 'ageRecipients');
    const found = checkTenantSecrets({
      declared: tenant.secrets,
      recipients: tenant.ageRecipients,
      adminRecipients: fleet.defaults.adminAgeRecipients,
      encryptedSecrets: tenant.encryptedSecrets,
    });
    for (const p of found.filter(isRecipientDrift))
      problems.push({ file: tenant.file, keyPath: p.keyPath, line: lineOf(tenant.file, p.keyPath), message: `tenant ${tenant.slug}: ${p.message}` });
  }
  return problems;
}

/** Loads and renders everything under `root`; throws one ProblemListError (or the single error) listing all problems. */
export async function checkRepo(root: string): Promise<CheckSummary> {
  const problems: FlotillaError[] = [];
  const attempt = async <T>(load: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await load();
    } catch (e) {
      if (!(e instanceof FlotillaError)) throw e;
      problems.push(e);
      return undefined;
    }
  };
  const fleetFiles = await readFleetFiles(root);
  const fleet: Fleet | undefined = await attempt(async () => loadFleetFromFiles(fleetFiles));
  if (fleet) {
    const secrets = await secretProblems(fleet, fleetFiles);
    if (secrets.length > 0) problems.push(new FleetConfigError(secrets));
  }
  const templates: TemplateSet | undefined = await attempt(() => loadTemplates(resolve(root, 'templates')));
  let files = 0;
  if (fleet && templates) {
    // Nothing is written, so the source only has to be well-formed.
    const { rendered, errors } = renderFleetCollecting(fleet, templates, { repo: root, commit: '0'.repeat(40) });
    problems.push(...groupRenderErrors(errors));
    files = rendered.reduce((n, r) => n + r.files.length, 0);
  }
  if (problems.length === 1) throw problems[0];
  if (problems.length > 1) throw new ProblemListError(problems);
  return { tenants: fleet!.tenants.length, paused: fleet!.tenants.filter((t) => t.paused).length, files };
}

