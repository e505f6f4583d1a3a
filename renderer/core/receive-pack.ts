// Many branches in one push: git's smart-HTTP receive-pack spoken directly, because
// isomorphic-git's push moves one ref per call. Publish uses it so a fleet-wide change
// is one request (or one per PUSH_BATCH_SIZE branches), with a result per branch.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import git, { type GitHttpResponse } from 'isomorphic-git';
import { GitError } from './errors.js';
import { authHeaders, branchRef, gitError, nodeGitDeps, sanitizeUrl, ZERO_OID, type GitAuth, type GitDeps } from './git.js';

// isomorphic-git's push moves one ref per call, so a fleet-wide change would cost one
// round trip per tenant. Smart HTTP receive-pack takes any number of ref updates and one
// pack in a single POST, answering per ref; these few pieces speak it directly.

/** One remote branch to move, compare-and-swap: it moves only while it still holds `expected`. */
export interface BranchUpdate {
  branch: string;
  /** The new commit; it and `objects` must be in the local repository. */
  commit: string;
  /** What the remote branch must hold now (the new commit's parent), or null for a new branch. */
  expected: string | null;
  /** Trees and blobs the remote lacks for this commit (the commit itself is always sent). */
  objects: readonly string[];
}

/**
 * `rejected`: the branch moved (build on its new head and push again);
 * `refused`: the server declined for another reason (a hook, branch protection).
 */
export type BranchPushResult = { status: 'pushed' } | { status: 'rejected' | 'refused'; reason: string };

/** A git object's type and content (without the `type size\0` header). */
export interface GitObject {
  type: 'commit' | 'tree' | 'blob' | 'tag';
  content: Uint8Array;
}

const PACK_TYPE = { commit: 1, tree: 2, blob: 3, tag: 4 } as const;

/**
 * A version 2 packfile of whole (undeltified) objects. Built here with Node's zlib:
 * isomorphic-git's packObjects compresses through web streams, ~10 s per 7,500 small objects.
 */
export function buildPackfile(objects: readonly GitObject[]): Buffer {
  return encodePack(objects).pack;
}

interface EncodedPack {
  pack: Buffer;
  /** Per object, in input order: where its entry starts and the CRC-32 of the entry's bytes. */
  entries: { offset: number; crc: number }[];
}

function encodePack(objects: readonly GitObject[]): EncodedPack {
  const header = Buffer.alloc(12);
  header.write('PACK', 0, 'ascii');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(objects.length, 8);
  const parts: Buffer[] = [header];
  const entries: EncodedPack['entries'] = [];
  let offset = header.length;
  for (const { type, content } of objects) {
    // Type in bits 6-4 of the first byte, size in 4 bits there and 7 bits per following byte.
    let size = content.length;
    const bytes: number[] = [];
    let byte = (PACK_TYPE[type] << 4) | (size & 0x0f);
    size = Math.floor(size / 16);
    while (size > 0) {
      bytes.push(byte | 0x80);
      byte = size & 0x7f;
      size = Math.floor(size / 128);
    }
    bytes.push(byte);
    const head = Buffer.from(bytes);
    const data = deflateSync(content, { level: 1 });
    entries.push({ offset, crc: crc32(data, crc32(head)) });
    parts.push(head, data);
    offset += head.length + data.length;
  }
  const body = Buffer.concat(parts);
  return { pack: Buffer.concat([body, createHash('sha1').update(body).digest()]), entries };
}

/** The version 2 `.idx` of a pack: git's (and isomorphic-git's) way to find an object in it. */
function packIndex(oids: readonly string[], entries: EncodedPack['entries'], packChecksum: Buffer): Buffer {
  const order = oids.map((oid, i) => ({ oid: Buffer.from(oid, 'hex'), ...entries[i]! })).sort((a, b) => Buffer.compare(a.oid, b.oid));
  const fanout = Buffer.alloc(256 * 4);
  for (let first = 0, i = 0; first < 256; first++) {
    while (i < order.length && order[i]!.oid[0]! <= first) i++;
    fanout.writeUInt32BE(i, first * 4);
  }
  const crcs = Buffer.alloc(order.length * 4);
  const offsets = Buffer.alloc(order.length * 4);
  order.forEach((o, i) => {
    // Offsets from 2^31 need the idx's large-offset table; a publish pack is far smaller.
    if (o.offset >= 0x80000000) throw new Error('pack larger than 2 GiB');
    crcs.writeUInt32BE(o.crc, i * 4);
    offsets.writeUInt32BE(o.offset, i * 4);
  });
  const body = Buffer.concat([Buffer.from([0xff, 0x74, 0x4f, 0x63, 0, 0, 0, 2]), fanout, ...order.map((o) => o.oid), crcs, offsets, packChecksum]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

/**
 * Stores objects in `gitdir` as one pack with its index, the way git keeps what it
 * receives: a fleet-wide publish makes ten thousand small objects, and a file each
 * costs ~1.5 ms to create on a VM's disk. The caller vouches that each `oid` is the
 * hash of its type and content. The pack is renamed into place before its index, so
 * a reader that finds the index finds the whole pack.
 */
export async function storePack(gitdir: string, objects: readonly (GitObject & { oid: string })[]): Promise<void> {
  if (objects.length === 0) return;
  const dir = join(gitdir, 'objects', 'pack');
  try {
    const { pack, entries } = encodePack(objects);
    const checksum = pack.subarray(pack.length - 20);
    const name = join(dir, `pack-${checksum.toString('hex')}`);
    const idx = packIndex(
      objects.map((o) => o.oid),
      entries,
      checksum,
    );
    await mkdir(dir, { recursive: true });
    const suffix = `.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(`${name}.pack${suffix}`, pack);
    await rename(`${name}.pack${suffix}`, `${name}.pack`);
    await writeFile(`${name}.idx${suffix}`, idx);
    await rename(`${name}.idx${suffix}`, `${name}.idx`);
  } catch (err) {
    throw gitError(`write pack of ${objects.length} objects`, gitdir, err);
  }
}

/** Ref updates per receive-pack request: one request per this many branches. */
export const PUSH_BATCH_SIZE = 500;

function encodePktLine(line: string): Buffer {
  const payload = Buffer.from(line, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0'), 'ascii'), payload]);
}

const FLUSH_PKT = Buffer.from('0000', 'ascii');

/** The pkt-lines of `data`; a flush (or delim) packet comes out as null. */
export function parsePktLines(data: Uint8Array): (Buffer | null)[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const lines: (Buffer | null)[] = [];
  let at = 0;
  while (at < buf.length) {
    const header = buf.subarray(at, at + 4).toString('ascii');
    const length = /^[0-9a-f]{4}$/i.test(header) ? Number.parseInt(header, 16) : Number.NaN;
    if (Number.isNaN(length)) throw new Error(`malformed pkt-line header "${header.replace(/[^\x20-\x7e]/g, '?')}"`);
    if (length < 4) {
      lines.push(null);
      at += 4;
      continue;
    }
    if (at + length > buf.length) throw new Error('truncated pkt-line in the server response');
    lines.push(buf.subarray(at + 4, at + length));
    at += length;
  }
  return lines;
}

/** Splits a side-band-64k stream: band 1 is the payload, band 2 progress, band 3 a fatal error. */
export function demultiplexSideBand(data: Uint8Array): Buffer {
  const payload: Buffer[] = [];
  for (const packet of parsePktLines(data)) {
    if (!packet || packet.length === 0) continue;
    const band = packet[0];
    if (band === 1) payload.push(packet.subarray(1));
    else if (band === 3) throw new Error(`remote: ${packet.subarray(1).toString('utf8').trim()}`);
  }
  return Buffer.concat(payload);
}

export interface ReceivePackAdvertisement {
  /** Full ref name -> commit id. */
  refs: Map<string, string>;
  capabilities: Set<string>;
}

/** Parses the body of `GET info/refs?service=git-receive-pack` (protocol v0). */
export function parseReceivePackAdvertisement(body: Uint8Array): ReceivePackAdvertisement {
  const refs = new Map<string, string>();
  const capabilities = new Set<string>();
  let first = true;
  for (const packet of parsePktLines(body)) {
    if (!packet) continue;
    let line = packet.toString('utf8').replace(/\n$/, '');
    if (line.startsWith('# service=')) continue;
    if (first) {
      first = false;
      const nul = line.indexOf('\0');
      if (nul !== -1) {
        for (const cap of line.slice(nul + 1).split(' ')) if (cap) capabilities.add(cap);
        line = line.slice(0, nul);
      }
    }
    const match = /^([0-9a-f]{40}) (\S+)$/.exec(line);
    if (!match) throw new Error(`unexpected line in the ref advertisement: ${line.slice(0, 80)}`);
    const [, oid, ref] = match as unknown as [string, string, string];
    // An empty repository advertises only its capabilities, on a placeholder ref.
    if (ref === 'capabilities^{}' || ref.endsWith('^{}')) continue;
    refs.set(ref, oid);
  }
  return { refs, capabilities };
}

export interface ReportStatus {
  /** `ok`, or the reason the server could not unpack the objects. */
  unpack: string;
  /** Full ref name -> null when updated, else the server's reason. */
  refs: Map<string, string | null>;
}

/** Parses a receive-pack report-status (already out of the side-band). */
export function parseReportStatus(data: Uint8Array): ReportStatus {
  let unpack: string | undefined;
  const refs = new Map<string, string | null>();
  for (const packet of parsePktLines(data)) {
    if (!packet) continue;
    const line = packet.toString('utf8').replace(/\n$/, '');
    if (line.startsWith('unpack ')) unpack = line.slice('unpack '.length);
    else if (line.startsWith('ok ')) refs.set(line.slice(3), null);
    else if (line.startsWith('ng ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      refs.set(space === -1 ? rest : rest.slice(0, space), space === -1 ? 'rejected' : rest.slice(space + 1));
    }
  }
  if (unpack === undefined) throw new Error('the server sent no report-status');
  return { unpack, refs };
}

/** Why git refuses a ref update whose old value is no longer current (git, GitHub, GitLab wordings). */
const BRANCH_MOVED = /non-fast-forward|fetch first|failed to (update|lock)|cannot lock|stale info|already exists|but expected|is at [0-9a-f]/i;

async function readBody(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  if (body) for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The URL without userinfo and its credentials as headers (what isomorphic-git does with such URLs). */
function splitUrlAuth(url: string, auth?: GitAuth): { base: string; headers: Record<string, string> } {
  let base = url.replace(/\/+$/, '');
  let headers = authHeaders(auth);
  try {
    const parsed = new URL(base);
    if (parsed.username || parsed.password) {
      if (!auth) {
        const basic = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`;
        headers = { Authorization: `Basic ${Buffer.from(basic).toString('base64')}` };
      }
      base = sanitizeUrl(base).replace(/\/+$/, '');
    }
  } catch {
    // not a WHATWG URL: the request below fails with a sanitized message
  }
  return { base, headers: { 'User-Agent': 'git/flotilla', ...headers } };
}

async function expectOk(res: GitHttpResponse, contentType: string): Promise<Buffer> {
  const body = await readBody(res.body);
  if (res.statusCode !== 200) {
    const text = body.subarray(0, 300).toString('utf8').trim();
    throw new Error(`HTTP Error: ${res.statusCode} ${res.statusMessage}${text ? `: ${text}` : ''}`);
  }
  const got = res.headers?.['content-type'] ?? '';
  if (!got.startsWith(contentType)) throw new Error(`expected ${contentType} from the server, got "${got}" (not a smart HTTP git server?)`);
  return body;
}

/** The refs and capabilities of the remote's receive-pack: one GET. */
export async function receivePackAdvertisement(
  url: string,
  auth?: GitAuth,
  deps: GitDeps = nodeGitDeps,
): Promise<ReceivePackAdvertisement> {
  const { base, headers } = splitUrlAuth(url, auth);
  try {
    const res = await deps.http.request({
      url: `${base}/info/refs?service=git-receive-pack`,
      method: 'GET',
      headers,
    });
    return parseReceivePackAdvertisement(await expectOk(res, 'application/x-git-receive-pack-advertisement'));
  } catch (err) {
    throw gitError('receive-pack discovery', url, err, auth);
  }
}

/**
 * Moves many remote branches with one receive-pack request per `batchSize` branches
 * (one GET for the advertisement, then one POST per batch), never forced: each update
 * names the commit the branch must still hold, so a branch someone moved comes back
 * `rejected` while the others land. Results are keyed by branch.
 */
export async function pushBranches(
  gitdir: string,
  url: string,
  updates: readonly BranchUpdate[],
  auth?: GitAuth,
  deps: GitDeps = nodeGitDeps,
  options: {
    batchSize?: number;
    /** Objects the caller holds in memory (trees and blobs it just built): spared a read from disk. */
    known?: (oid: string) => GitObject | undefined;
  } = {},
): Promise<Map<string, BranchPushResult>> {
  const results = new Map<string, BranchPushResult>();
  if (updates.length === 0) return results;
  const batchSize = Math.max(1, options.batchSize ?? PUSH_BATCH_SIZE);
  const { base, headers } = splitUrlAuth(url, auth);
  const { refs: advertised, capabilities } = await receivePackAdvertisement(url, auth, deps);
  if (!capabilities.has('report-status')) {
    throw new GitError('push', sanitizeUrl(url), 'the server does not offer report-status; cannot tell which branches moved');
  }
  const wanted = ['report-status', 'side-band-64k'].filter((c) => capabilities.has(c));
  if ([...capabilities].some((c) => c.startsWith('agent='))) wanted.push('agent=flotilla');
  const sideBand = wanted.includes('side-band-64k');

  // A branch already elsewhere than expected would be refused anyway: spare its objects.
  const sendable: BranchUpdate[] = [];
  for (const update of updates) {
    const now = advertised.get(branchRef(update.branch)) ?? null;
    if (now === update.expected) sendable.push(update);
    else results.set(update.branch, { status: 'rejected', reason: `the branch is at ${now ?? 'nothing'}, expected ${update.expected ?? 'nothing'}` });
  }

  const cache = {};
  for (let start = 0; start < sendable.length; start += batchSize) {
    const batch = sendable.slice(start, start + batchSize);
    const label = batch.length === 1 ? `push ${batch[0]!.branch}` : `push ${batch.length} branches`;
    try {
      const oids = new Set<string>();
      for (const update of batch) {
        oids.add(update.commit);
        for (const oid of update.objects) oids.add(oid);
      }
      const objects: GitObject[] = [];
      for (const oid of oids) {
        const held = options.known?.(oid);
        if (held) {
          objects.push(held);
          continue;
        }
        const { type, object } = await git.readObject({ fs: deps.fs, gitdir, oid, format: 'content', cache });
        objects.push({ type: type as GitObject['type'], content: object as Uint8Array });
      }
      const packfile = buildPackfile(objects);
      const commands = batch.map((u, i) => {
        const line = `${u.expected ?? ZERO_OID} ${u.commit} ${branchRef(u.branch)}`;
        return encodePktLine(i === 0 ? `${line}\0${wanted.join(' ')}\n` : `${line}\n`);
      });
      const body = Buffer.concat([...commands, FLUSH_PKT, packfile]);
      const res = await deps.http.request({
        url: `${base}/git-receive-pack`,
        method: 'POST',
        headers: {
          ...headers,
          'Content-Type': 'application/x-git-receive-pack-request',
          Accept: 'application/x-git-receive-pack-result',
        },
        // One buffer, as isomorphic-git does, so Node sends a Content-Length (some hosts hang up on chunked bodies).
        body: [body] as unknown as AsyncIterableIterator<Uint8Array>,
      });
      const raw = await expectOk(res, 'application/x-git-receive-pack-result');
      const report = parseReportStatus(sideBand ? demultiplexSideBand(raw) : raw);
      if (report.unpack !== 'ok') throw new Error(`the server could not unpack the objects: ${report.unpack}`);
      for (const update of batch) {
        const reason = report.refs.get(branchRef(update.branch));
        if (reason === null) results.set(update.branch, { status: 'pushed' });
        else if (reason === undefined) results.set(update.branch, { status: 'refused', reason: 'the server reported nothing for this branch' });
        else results.set(update.branch, { status: BRANCH_MOVED.test(reason) ? 'rejected' : 'refused', reason });
      }
    } catch (err) {
      throw gitError(label, url, err, auth);
    }
  }
  return results;
}
