// Stand-ins for every image the example fleet names, built without network: a
// busybox-static rootfs whose entrypoint ignores its arguments (the compose file's
// `command:` overrides are meant for the real programs) and answers the example
// compose's healthchecks: wget on ports 4000/3000/80/9090, `pg_isready`, and
// `redis-cli ... ping | grep -q PONG`. `/VERSION` holds the tag, so the running
// version of a tenant can be read with `docker exec <container> cat /VERSION`.
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { docker, type DockerClient } from '../test/support/images.js';

const execFileAsync = promisify(execFile);

const APPLETS = ['sh', 'sleep', 'httpd', 'wget', 'cat', 'echo', 'grep', 'mkdir', 'test', 'true', 'false', 'ls', 'kill', 'ps'];

/** Paths the example compose's wget healthchecks ask for, served on every port below. */
const HEALTH_PATHS = ['index.html', 'healthz', 'api/health', '-/healthy'];
const HTTP_PORTS = [80, 3000, 4000, 9090];

// PID 1 is this shell when a service has no `init: true`: it must exit on TERM itself,
// or `compose down` waits 10 s per container for a kill.
const ENTRYPOINT = `#!/bin/sh
# Flotilla demo stand-in: ignores its arguments and serves the health endpoints.
for path in ${HEALTH_PATHS.join(' ')}; do
  mkdir -p "/www/$(dirname "$path")"
  echo ok > "/www/$path"
done
for port in ${HTTP_PORTS.join(' ')}; do
  httpd -p "$port" -h /www
done
trap 'exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
`;

const PG_ISREADY = `#!/bin/sh
# Flotilla demo stand-in for pg_isready: the stand-in postgres is always ready.
echo "/var/run/postgresql:5432 - accepting connections"
`;

const REDIS_CLI = `#!/bin/sh
# Flotilla demo stand-in for redis-cli: every command answers PONG.
echo PONG
`;

export interface DemoImage {
  /** Full reference, `<registry>/<name>:<tag>`. */
  reference: string;
  tag: string;
}

/**
 * Every `<registry>/<name>:<tag>` the fleet needs: names with a tag are pinned and
 * built once; names without one get every tag in `releaseTags`.
 */
export function demoImageReferences(registry: string, images: Record<string, string>, releaseTags: string[]): DemoImage[] {
  const prefix = registry.replace(/\/+$/, '');
  const out = new Map<string, DemoImage>();
  for (const name of Object.values(images)) {
    const colon = name.lastIndexOf(':');
    const pinned = colon > name.lastIndexOf('/');
    const tags = pinned ? [name.slice(colon + 1)] : releaseTags;
    const repository = pinned ? name.slice(0, colon) : name;
    for (const tag of tags) {
      const reference = `${prefix}/${repository}:${tag}`;
      out.set(reference, { reference, tag });
    }
  }
  return [...out.values()].sort((a, b) => a.reference.localeCompare(b.reference));
}

/** A rootfs tar with busybox, the stubs and `/VERSION`. */
export async function buildDemoRootfs(dir: string, version: string, busybox = '/bin/busybox'): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  const bin = join(rootfs, 'bin');
  const localBin = join(rootfs, 'usr', 'local', 'bin');
  await mkdir(bin, { recursive: true });
  await mkdir(localBin, { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { mode: 0o1777 });
  await copyFile(busybox, join(bin, 'busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(bin, applet));
  const scripts: Record<string, string> = { 'demo-service': ENTRYPOINT, pg_isready: PG_ISREADY, 'redis-cli': REDIS_CLI };
  for (const [name, text] of Object.entries(scripts)) {
    await writeFile(join(localBin, name), text);
    await chmod(join(localBin, name), 0o755);
  }
  await writeFile(join(rootfs, 'VERSION'), `${version}\n`);
  const tar = join(dir, 'rootfs.tar');
  await execFileAsync('tar', ['-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
  return tar;
}

/** Builds and pushes every image; `onImage` hears about each one as it is pushed. */
export async function pushDemoImages(
  images: DemoImage[],
  opts: DockerClient & { workDir: string; busybox?: string; onImage?: (image: DemoImage) => void },
): Promise<void> {
  const work = await mkdtemp(join(opts.workDir, 'images-'));
  try {
    for (const [i, image] of images.entries()) {
      const tar = await buildDemoRootfs(join(work, String(i)), image.tag, opts.busybox);
      await docker(
        [
          'import',
          '--change',
          'ENV PATH=/usr/local/bin:/usr/bin:/bin',
          '--change',
          'ENTRYPOINT ["/usr/local/bin/demo-service"]',
          tar,
          image.reference,
        ],
        opts,
      );
      await docker(['push', image.reference], opts);
      opts.onImage?.(image);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
