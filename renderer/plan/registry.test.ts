// Integration: the real Debian `docker-registry` (distribution 2.8) on 127.0.0.1,
// images put into it through its own HTTP API (no Docker engine), and a tiny
// loopback token server + gate in front of it for the bearer-challenge path.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../core/errors.js';
import { isValidTag, parseAuthChallenge, parseImage, registryBaseUrl, tagExists } from './registry.js';

interface RunningRegistry {
  host: string;
  stop(): Promise<void>;
}

async function startRegistry(): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-secret\n`,
  );
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const host = await new Promise<string>((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(log);
      if (m?.[1]) resolve(m[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`docker-registry exited (${code}): ${log}`)));
    child.on('error', reject);
  });
  return {
    host,
    async stop() {
      if (child.exitCode === null && child.pid) {
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const digest = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushBlob(base: string, name: string, blob: Buffer): Promise<string> {
  const start = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get('location')!, base);
  location.searchParams.set('digest', digest(blob));
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(blob),
  });
  expect(put.status).toBe(201);
  return digest(blob);
}

async function putManifest(base: string, name: string, ref: string, mediaType: string, body: object): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(body));
  const res = await fetch(`${base}/v2/${name}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: new Uint8Array(bytes),
  });
  expect(res.status, await res.text()).toBe(201);
  return digest(bytes);
}

/** Pushes a one-layer image in the given manifest format and returns the manifest digest. */
async function pushImage(host: string, name: string, tag: string, format: 'docker' | 'oci'): Promise<{ digest: string; size: number }> {
  const base = `http://${host}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.from(`layer of ${name}:${tag}`);
  const configDigest = await pushBlob(base, name, config);
  const layerDigest = await pushBlob(base, name, layer);
  const docker = format === 'docker';
  const mediaType = docker
    ? 'application/vnd.docker.distribution.manifest.v2+json'
    : 'application/vnd.oci.image.manifest.v1+json';
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      size: config.length,
      digest: configDigest,
    },
    layers: [
      {
        mediaType: docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
        size: layer.length,
        digest: layerDigest,
      },
    ],
  };
  const d = await putManifest(base, name, tag, mediaType, manifest);
  return { digest: d, size: Buffer.byteLength(JSON.stringify(manifest)) };
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('tagExists against the real docker-registry', () => {
  let registry: RunningRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
    await pushImage(registry.host, 'acme/api', 'v2.10.3', 'docker');
    const oci = await pushImage(registry.host, 'acme/api', 'v2.11.0-amd64', 'oci');
    // A multi-arch tag: an OCI index pointing at the manifest above.
    await putManifest(`http://${registry.host}`, 'acme/api', 'v2.11.0', 'application/vnd.oci.image.index.v1+json', {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: oci.digest,
          size: oci.size,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('finds a tag pushed as a Docker schema 2 manifest', async () => {
    expect(await tagExists(`${registry.host}/acme/api`, 'v2.10.3')).toBe(true);
  });

  it('finds tags pushed as an OCI manifest and as an OCI index', async () => {
    expect(await tagExists(`${registry.host}/acme/api`, 'v2.11.0-amd64')).toBe(true);
    expect(await tagExists(`${registry.host}/acme/api`, 'v2.11.0')).toBe(true);
  });

  it('reports a tag that was never pushed as missing', async () => {
    expect(await tagExists(`${registry.host}/acme/api`, 'v9.9.9')).toBe(false);
  });

  it('reports a repository the registry does not know as missing', async () => {
    expect(await tagExists(`${registry.host}/acme/nope`, 'v2.10.3')).toBe(false);
  });

  it('refuses an invalid tag before asking the registry', async () => {
    await expect(tagExists(`${registry.host}/acme/api`, 'v1 beta')).rejects.toThrow(/not a valid image tag/);
  });

  it('names the registry when it cannot be reached', async () => {
    const server = createServer();
    const port = await listen(server);
    await close(server); // a port nobody listens on
    const err = await tagExists(`127.0.0.1:${port}/acme/api`, 'v1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toContain(`127.0.0.1:${port}`);
  });

  describe('behind a bearer-token challenge', () => {
    const TOKEN = 'token-for-acme-api';
    let tokenServer: Server;
    let gate: Server;
    let gateHost: string;
    const tokenRequests: URL[] = [];
    let issueToken = true;

    beforeAll(async () => {
      tokenServer = createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        tokenRequests.push(url);
        if (!issueToken) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
      });
      const tokenPort = await listen(tokenServer);
      // The gate plays a registry configured for token auth: no valid token, a challenge; else proxy to the real one.
      gate = createServer(async (req, res) => {
        if (req.headers.authorization !== `Bearer ${TOKEN}`) {
          res
            .writeHead(401, {
              'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${tokenPort}/token",service="test-registry",scope="repository:acme/api:pull"`,
            })
            .end();
          return;
        }
        const upstream = await fetch(`http://${registry.host}${req.url}`, {
          method: req.method,
          headers: { Accept: String(req.headers.accept ?? '') },
        });
        res.writeHead(upstream.status, Object.fromEntries(upstream.headers)).end();
      });
      gateHost = `127.0.0.1:${await listen(gate)}`;
    });
    afterAll(async () => {
      await close(gate);
      await close(tokenServer);
    });

    it('fetches a token for the challenged scope and service, then finds the tag', async () => {
      tokenRequests.length = 0;
      expect(await tagExists(`${gateHost}/acme/api`, 'v2.10.3')).toBe(true);
      expect(tokenRequests).toHaveLength(1);
      expect(tokenRequests[0]?.pathname).toBe('/token');
      expect(tokenRequests[0]?.searchParams.get('service')).toBe('test-registry');
      expect(tokenRequests[0]?.searchParams.get('scope')).toBe('repository:acme/api:pull');
    });

    it('still tells a missing tag from a present one', async () => {
      expect(await tagExists(`${gateHost}/acme/api`, 'v0.0.1')).toBe(false);
    });

    it('sends credentials to the token endpoint as basic auth when given', async () => {
      const seen: string[] = [];
      const spyFetch: typeof fetch = (input, init) => {
        const h = new Headers(init?.headers);
        if (String(input).includes('/token')) seen.push(h.get('authorization') ?? '');
        return fetch(input, init);
      };
      await tagExists(`${gateHost}/acme/api`, 'v2.10.3', {
        fetch: spyFetch,
        credentials: { username: 'ci', password: 's3cret' },
      });
      expect(seen).toEqual([`Basic ${Buffer.from('ci:s3cret').toString('base64')}`]);
    });

    it('is an error, not "missing", when the token endpoint refuses', async () => {
      issueToken = false;
      try {
        await expect(tagExists(`${gateHost}/acme/api`, 'v2.10.3')).rejects.toThrow(RegistryError);
        await expect(tagExists(`${gateHost}/acme/api`, 'v2.10.3')).rejects.toThrow(/token endpoint .* HTTP 401/);
      } finally {
        issueToken = true;
      }
    });
  });
});

describe('image references', () => {
  it('splits host:port/name', () => {
    expect(parseImage('127.0.0.1:5000/acme/api')).toEqual({ host: '127.0.0.1:5000', name: 'acme/api' });
    expect(parseImage('ghcr.io/acme/api')).toEqual({ host: 'ghcr.io', name: 'acme/api' });
  });

  it('expands Docker Hub short names', () => {
    expect(parseImage('nginx')).toEqual({ host: 'registry-1.docker.io', name: 'library/nginx' });
    expect(parseImage('acme/api')).toEqual({ host: 'registry-1.docker.io', name: 'acme/api' });
  });

  it('rejects a name that carries a tag or digest', () => {
    expect(() => parseImage('ghcr.io/acme/api:v1')).toThrow(/carries a tag/);
    expect(() => parseImage('ghcr.io/acme/api@sha256:abc')).toThrow(RegistryError);
  });

  it('uses plain HTTP only for loopback registries', () => {
    expect(registryBaseUrl('127.0.0.1:5000')).toBe('http://127.0.0.1:5000');
    expect(registryBaseUrl('127.8.9.10:5000')).toBe('http://127.8.9.10:5000');
    expect(registryBaseUrl('localhost:5000')).toBe('http://localhost:5000');
    expect(registryBaseUrl('ghcr.io')).toBe('https://ghcr.io');
    expect(registryBaseUrl('127.0.0.1.nip.io')).toBe('https://127.0.0.1.nip.io');
  });

  it('validates tags the way Docker does', () => {
    expect(isValidTag('v2.10.3')).toBe(true);
    expect(isValidTag('latest')).toBe(true);
    expect(isValidTag('-rc')).toBe(false);
    expect(isValidTag('a'.repeat(129))).toBe(false);
    expect(isValidTag('v1/2')).toBe(false);
  });

  it('parses a bearer challenge with quoted parameters', () => {
    expect(
      parseAuthChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'),
    ).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
  });
});
