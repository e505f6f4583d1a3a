// Every tenant of the fleet checkout rendered and published at once (no waves):
// render.ts renders, publish.ts commits and pushes; paused tenants are skipped.
import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { sanitizeUrl } from '../core/git.js';
import { findTenant, loadFleet } from '../fleet/fleet.js';
import { loadTemplates, renderFleet, renderTenant } from '../render/render.js';
import { resolveSource } from '../repo.js';
import { publishTenants, type PublishResult } from './publish.js';

export interface PublishSummary extends PublishResult {
  paused: string[];
}

/** Renders the fleet at `root` and publishes every live tenant. */
export async function publishFleet(
  root: string,
  opts: {
    repoUrl: string;
    token?: string;
    cacheDir: string;
    source?: { repo?: string; commit?: string };
    onProgress?: Parameters<typeof publishTenants>[0]['onProgress'];
    /** Signs every tenant commit (agents with FLOTILLA_TRUSTED_KEYS apply only signed ones). */
    signingKey?: KeyObject;
  },
): Promise<PublishSummary> {
  const [fleet, templates, source] = await Promise.all([
    loadFleet(root),
    loadTemplates(join(root, 'templates')),
    resolveSource(root, opts.source ?? {}),
  ]);
  // A manifest is committed for every host to read: never let a credential in the origin URL into it.
  source.repo = sanitizeUrl(source.repo);
  const rendered = renderFleet(fleet, templates, source);
  const live = rendered.filter((t) => !t.paused);
  const result = await publishTenants({
    repoUrl: opts.repoUrl,
    ...(opts.token ? { auth: { token: opts.token } } : {}),
    workDir: opts.cacheDir,
    tenants: live.map((t) => ({
      slug: t.slug,
      files: t.files,
      renderAt: (at) => renderTenant(fleet, findTenant(fleet, t.slug)!, templates, at).files,
    })),
    source,
    branchPrefix: fleet.defaults.tenantBranchPrefix,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signingKey ? { signingKey: opts.signingKey } : {}),
  });
  return { ...result, paused: rendered.filter((t) => t.paused).map((t) => t.slug) };
}

