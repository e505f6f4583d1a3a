// Does an image tag exist in its registry? One `HEAD /v2/<name>/manifests/<tag>`
// (Docker registry HTTP API v2), following the registry's bearer-token challenge
// when it sends one. Nothing is pulled; `fetch` is injected so tests and
// proxies can point it anywhere.
import { FlotillaError, RegistryError } from '../core/errors.js';
import type { RegistryCheck } from './plan.js';
import { IMAGE_TAG_PATTERN } from '../fleet/fleet.js';

/** Every manifest type a tag may point at: multi-arch indexes and single manifests, OCI and Docker. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const DOCKER_HUB = 'registry-1.docker.io';

export interface ImageReference {
  /** `host[:port]` of the registry. */
  host: string;
  /** Repository name inside the registry, e.g. `acme/api` or `library/nginx`. */
  name: string;
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface TagExistsOptions {
  fetch?: typeof fetch;
  /** Sent as basic auth to the token endpoint (or the registry when it asks for basic auth). */
  credentials?: RegistryCredentials;
}

/**
 * Splits `host:port/name` (or a Docker Hub short name like `nginx`) into registry
 * host and repository name. A first segment with a dot, a colon or `localhost` is a host.
 */
export function parseImage(image: string): ImageReference {
  const trimmed = image.trim();
  if (!trimmed || /[\s@]/.test(trimmed) || trimmed.startsWith('/') || trimmed.endsWith('/'))
    throw new RegistryError(image, 'not an image name (expected host:port/name, without tag or digest)');
  const slash = trimmed.indexOf('/');
  const first = slash === -1 ? '' : trimmed.slice(0, slash);
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    const name = trimmed.slice(slash + 1);
    if (name.includes(':')) throw new RegistryError(image, 'image name carries a tag; pass the tag separately');
    return { host: first, name };
  }
  if (trimmed.includes(':')) throw new RegistryError(image, 'image name carries a tag; pass the tag separately');
  return { host: DOCKER_HUB, name: slash === -1 ? `library/${trimmed}` : trimmed };
}

/** Loopback registries speak plain HTTP (as Docker allows); everything else HTTPS. */
export function registryBaseUrl(host: string): string {
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  const loopback =
    hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname ?? '');
  return `${loopback ? 'http' : 'https'}://${host}`;
}

/** A Docker tag: letters, digits, `_ . -`, at most 128 characters, not starting with `.` or `-`. */
export function isValidTag(tag: string): boolean {
  return IMAGE_TAG_PATTERN.test(tag);
}

export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="https://auth",service="registry",scope="repository:a/b:pull"`. */
export function parseAuthChallenge(header: string): AuthChallenge | null {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match?.[1]) return null;
  const params: Record<string, string> = {};
  const paramPattern = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (const p of (match[2] ?? '').matchAll(paramPattern)) {
    if (p[1]) params[p[1].toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: match[1].toLowerCase(), params };
}

function basicAuth(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

async function request(
  doFetch: typeof fetch,
  image: string,
  url: string,
  init: RequestInit,
): Promise<Response> {
  try {
    return await doFetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new RegistryError(image, `cannot reach ${new URL(url).origin}: ${why}`);
  }
}

async function fetchBearerToken(
  doFetch: typeof fetch,
  image: string,
  challenge: AuthChallenge,
  name: string,
  credentials: RegistryCredentials | undefined,
): Promise<string> {
  const realm = challenge.params.realm;
  if (!realm) throw new RegistryError(image, 'registry sent a Bearer challenge without a realm');
  let tokenUrl: URL;
  try {
    tokenUrl = new URL(realm);
  } catch {
    throw new RegistryError(image, `registry sent an invalid token realm ${JSON.stringify(realm)}`);
  }
  if (challenge.params.service) tokenUrl.searchParams.set('service', challenge.params.service);
  tokenUrl.searchParams.set('scope', challenge.params.scope ?? `repository:${name}:pull`);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (credentials) headers.Authorization = basicAuth(credentials);
  const res = await request(doFetch, image, tokenUrl.toString(), { method: 'GET', headers });
  if (!res.ok) {
    await res.body?.cancel();
    throw new RegistryError(image, `token endpoint ${tokenUrl.origin}${tokenUrl.pathname} answered HTTP ${res.status}`);
  }
  let body: { token?: unknown; access_token?: unknown };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new RegistryError(image, `token endpoint ${tokenUrl.origin}${tokenUrl.pathname} did not answer JSON`);
  }
  const token = typeof body.token === 'string' ? body.token : body.access_token;
  if (typeof token !== 'string' || !token)
    throw new RegistryError(image, `token endpoint ${tokenUrl.origin}${tokenUrl.pathname} answered without a token`);
  return token;
}

/**
 * True when `image:tag` resolves to a manifest, false when the registry says the
 * tag (or repository) is unknown. Any other answer is a RegistryError: a check
 * that cannot run must not read as "missing" or as "present".
 */
export async function tagExists(image: string, tag: string, opts: TagExistsOptions = {}): Promise<boolean> {
  const doFetch = opts.fetch ?? fetch;
  if (!isValidTag(tag)) throw new RegistryError(image, `${JSON.stringify(tag)} is not a valid image tag`);
  const ref = parseImage(image);
  const url = `${registryBaseUrl(ref.host)}/v2/${ref.name}/manifests/${encodeURIComponent(tag)}`;
  const head = (authorization?: string) =>
    request(doFetch, image, url, {
      method: 'HEAD',
      headers: { Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) },
    });

  let res = await head();
  if (res.status === 401) {
    const challenge = parseAuthChallenge(res.headers.get('www-authenticate') ?? '');
    if (challenge?.scheme === 'bearer') {
      const token = await fetchBearerToken(doFetch, image, challenge, ref.name, opts.credentials);
      res = await head(`Bearer ${token}`);
    } else if (challenge?.scheme === 'basic' && opts.credentials) {
      res = await head(basicAuth(opts.credentials));
    }
  }
  await res.body?.cancel();
  if (res.ok) return true;
  if (res.status === 404) return false;
  if (res.status === 401 || res.status === 403)
    throw new RegistryError(image, `registry refused access to ${ref.name} (HTTP ${res.status}); check registry credentials`);
  throw new RegistryError(image, `HEAD manifests/${tag} answered HTTP ${res.status}`);
}

/** Registry credentials from FLOTILLA_REGISTRY_USERNAME / FLOTILLA_REGISTRY_PASSWORD, when both are set. */
export function registryCredentials(env: Record<string, string | undefined>): RegistryCredentials | undefined {
  const username = env.FLOTILLA_REGISTRY_USERNAME;
  const password = env.FLOTILLA_REGISTRY_PASSWORD;
  return username && password ? { username, password } : undefined;
}

/** The registry check plan uses: tagExists, with any failure reported as an error result. */
export function registryCheckFor(env: Record<string, string | undefined>, doFetch?: typeof fetch): RegistryCheck {
  const credentials = registryCredentials(env);
  return async (image, tag) => {
    try {
      const opts: Parameters<typeof tagExists>[2] = {};
      if (credentials) opts.credentials = credentials;
      if (doFetch) opts.fetch = doFetch;
      return (await tagExists(image, tag, opts)) ? 'present' : 'missing';
    } catch (e) {
      return { error: e instanceof FlotillaError ? e.message : String(e) };
    }
  };
}
