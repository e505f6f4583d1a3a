// A small tenant tree the way the renderer publishes it: a one-service compose stack
// (busybox test image, `network_mode: none`, `init: true`, a 1 s healthcheck), one
// config file the container mounts, and `.flotilla/manifest.json` describing them.
// Agent tests publish these to a loopback git server and apply them for real.
import { createHash } from 'node:crypto';
import { scanComposeText } from '../../renderer/core/compose-vars.js';
import { serializeManifest, sha256, type Manifest, type RenderedFile, MANIFEST_PATH } from '../../renderer/core/manifest.js';

export interface TenantFixtureOptions {
  tenant: string;
  /** The tag the env patch sets (`IMAGE_TAG`). */
  imageTag: string;
  /** `127.0.0.1:PORT` of the registry; goes into the env patch as `REGISTRY`. */
  registry: string;
  /** Image repository below the registry, e.g. `flotilla-test/app`. */
  repository: string;
  mode?: 'managed' | 'adopted';
  /** False: the healthcheck can never pass (the container runs but turns unhealthy). */
  healthy?: boolean;
  /** Content of `config/app.conf`, mounted at /etc/app.conf. */
  configText?: string;
  /** Extra required variables the compose file uses (`${NAME}` in the container environment). */
  requires?: string[];
  /** Secrets the host generates (managed tenants); each is also required by the compose file. */
  secrets?: string[];
  /** Overrides of the env patch; `null` drops a key (an adopted host defines it itself). */
  envPatch?: Record<string, string | null>;
  /** The fleet-repo commit this render comes from. */
  sourceCommit?: string;
}

export interface TenantFixture {
  manifest: Manifest;
  /** Every file of the branch tree, the manifest included. */
  files: RenderedFile[];
  composeText: string;
}

export const FIXTURE_SOURCE_REPO = 'acme/fleet';

/** A managed tenant's manifest with no files, for tests about the manifest alone; `overrides` sets any field. */
export function manifestOf(overrides: Partial<Manifest> = {}): Manifest {
  return {
    schemaVersion: 1,
    tenant: 'acme',
    mode: 'managed',
    imageTag: 'v1',
    source: { repo: FIXTURE_SOURCE_REPO, commit: 'a'.repeat(40) },
    files: [],
    envPatch: {},
    requiredVariables: [],
    secrets: [],
    ...overrides,
  };
}

/** A stable fake fleet-repo commit id for a label ("v2 bump"). */
export function fakeSourceCommit(label: string): string {
  return createHash('sha1').update(label).digest('hex');
}

export function composeText(opts: Pick<TenantFixtureOptions, 'repository' | 'healthy' | 'requires' | 'secrets'>): string {
  const envNames = [...(opts.requires ?? []), ...(opts.secrets ?? [])];
  const lines = [
    'services:',
    '  app:',
    `    image: \${REGISTRY}/${opts.repository}:\${IMAGE_TAG:-v1}`,
    '    init: true',
    '    network_mode: none',
    '    command: ["sleep", "3600"]',
    '    volumes:',
    '      - ./config/app.conf:/etc/app.conf:ro',
  ];
  if (envNames.length > 0) {
    lines.push('    environment:');
    for (const name of envNames) lines.push(`      ${name}: \${${name}}`);
  }
  const probe = opts.healthy === false ? '/etc/never-there' : '/etc/app.conf';
  lines.push(
    '    healthcheck:',
    `      test: ["CMD", "test", "-f", "${probe}"]`,
    '      interval: 1s',
    '      timeout: 2s',
    '      retries: 1',
    '',
  );
  return lines.join('\n');
}

/** Builds the tree and its manifest; requiredVariables come from the real compose scanner. */
export function tenantFixture(opts: TenantFixtureOptions): TenantFixture {
  const compose = composeText(opts);
  const config = opts.configText ?? `# app config for ${opts.tenant}\nversion = ${opts.imageTag}\n`;
  const rendered: RenderedFile[] = [
    { path: 'config/app.conf', content: config, mode: 0o644 },
    { path: 'docker-compose.yml', content: compose, mode: 0o644 },
  ];
  const envPatch: Record<string, string> = {};
  const defaults: Record<string, string | null> = { REGISTRY: opts.registry, IMAGE_TAG: opts.imageTag, ...opts.envPatch };
  for (const [key, value] of Object.entries(defaults)) if (value !== null) envPatch[key] = value;
  const manifest: Manifest = {
    schemaVersion: 1,
    tenant: opts.tenant,
    mode: opts.mode ?? 'managed',
    imageTag: opts.imageTag,
    source: { repo: FIXTURE_SOURCE_REPO, commit: opts.sourceCommit ?? fakeSourceCommit(`${opts.tenant} ${opts.imageTag}`) },
    files: rendered.map((f) => ({ path: f.path, sha256: sha256(f.content), mode: f.mode })),
    envPatch,
    requiredVariables: scanComposeText(compose, 'docker-compose.yml').required,
    secrets: opts.secrets ?? [],
  };
  return {
    manifest,
    files: [...rendered, { path: MANIFEST_PATH, content: serializeManifest(manifest), mode: 0o644 }],
    composeText: compose,
  };
}
