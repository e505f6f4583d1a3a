// Small test images without any network: a busybox-static rootfs in a tar,
// `docker import`ed once per tag with a /VERSION file holding the tag, so a test
// can ask a running container which version it runs (`cat /VERSION`).

import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const APPLETS = ['sh', 'sleep', 'httpd', 'wget', 'cat', 'echo', 'test', 'true', 'false', 'ls', 'kill'];

export interface DockerClient {
  /** `unix://...`; default process.env.DOCKER_HOST. */
  host?: string;
  /** DOCKER_CONFIG folder; default process.env.DOCKER_CONFIG. */
  dockerConfig?: string;
}

export interface PushOptions extends DockerClient {
  busybox?: string;
}

/**
 * Builds `<registry>/<name>:<tag>` for every tag (each with `/VERSION` = tag) and
 * pushes them. Returns the image references, in the order of `tags`.
 */
export async function pushTestImage(
  registry: string,
  name: string,
  tags: string[],
  opts: PushOptions = {},
): Promise<string[]> {
  const work = await mkdtemp(join(process.env.FLOTILLA_TEST_RUN_DIR ?? tmpdir(), 'image-'));
  try {
    const references: string[] = [];
    for (const tag of tags) {
      const reference = `${registry}/${name}:${tag}`;
      const tar = await buildRootfsTar(join(work, tag), tag, opts.busybox);
      await docker(['import', '--change', 'CMD ["/bin/sh"]', tar, reference], opts);
      await docker(['push', reference], opts);
      references.push(reference);
    }
    return references;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A rootfs tar: /bin/busybox, links for the applets tests use, /VERSION, /tmp. */
export async function buildRootfsTar(dir: string, version: string, busybox = '/bin/busybox'): Promise<string> {
  const rootfs = join(dir, 'rootfs');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { mode: 0o1777 });
  await copyFile(busybox, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));
  await writeFile(join(rootfs, 'VERSION'), `${version}\n`);
  const tar = join(dir, 'rootfs.tar');
  await execFileAsync('tar', ['-C', rootfs, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
  return tar;
}

/** Runs the docker CLI against the given engine; throws with docker's own message. */
export async function docker(args: string[], client: DockerClient = {}): Promise<string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
  };
  const host = client.host ?? process.env.DOCKER_HOST;
  const config = client.dockerConfig ?? process.env.DOCKER_CONFIG;
  if (host) env.DOCKER_HOST = host;
  if (config) env.DOCKER_CONFIG = config;
  try {
    const { stdout } = await execFileAsync('docker', args, { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`docker ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}
