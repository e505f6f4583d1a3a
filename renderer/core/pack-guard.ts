// Reads a git upload-pack response while it arrives, before isomorphic-git buffers the
// whole pack and inflates every object whole to index it. Each object's size is in its
// pack entry header (and a delta's result size in the delta's first bytes), so an object
// over the limit is refused from its header: the pack is never stored, and memory stays
// at the limit whatever the branch holds. Objects within the limit are inflated here in
// a stream (16 KB at a time, discarded) only to find where each entry ends, to hash it,
// and to keep commits and trees, which are small: the history they give lets a
// fast-forward check skip a commit whose blobs were refused. The refused object itself is
// never inflated, not even to learn its id: that alone grew the peak with the file.
import { createHash, type Hash } from 'node:crypto';
import pako, { type Inflate } from 'pako';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';
const TYPES: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
const OFS_DELTA = 6;
const REF_DELTA = 7;

export interface PackLimits {
  /** Largest object (inflated, as declared) accepted. */
  maxObjectBytes: number;
  /** Largest pack (compressed, as sent) accepted. */
  maxPackBytes: number;
  /** Stop at the first object that is not a commit: the caller wants the history only. */
  commitsOnly?: boolean;
}

export interface SeenCommit {
  parents: string[];
  tree: string;
}

/** Why the guard stopped a response. `commits-read` is the end of a commits-only read, not a failure. */
export class PackStop extends Error {
  constructor(
    readonly reason: 'too-large' | 'pack-too-large' | 'commits-read' | 'corrupt',
    message: string,
    readonly object?: { type: ObjectType | 'delta'; size: number },
  ) {
    super(message);
  }
}

/** Commits and trees met in the responses one guard watched, refused ones included. */
export interface PackSeen {
  /** The commits the client asked for (`want` lines). */
  wants: string[];
  commits: Map<string, SeenCommit>;
  trees: Map<string, Buffer>;
  /** Blobs that arrived whole (so the refused one is not among them). */
  blobs: Set<string>;
  stop?: PackStop;
}

/** What is kept in memory of small objects (commits, trees) to resolve deltas and read history. */
const RETAIN_BUDGET_BYTES = 32 * 1024 * 1024;

interface Entry {
  offset: number;
  kind: number;
  /** Declared size: the object's, or for a delta the delta data's. */
  size: number;
  baseOffset?: number;
  baseOid?: string;
  /** The object's type, once known (a delta takes its base's). */
  type?: ObjectType;
  inflater: Inflate;
  hash?: Hash;
  out: number;
  chunks?: Uint8Array[];
  /** A delta's first inflated bytes, until the size of the object it makes is read from them (then undefined). */
  deltaHead?: Buffer;
}

interface Known {
  type?: ObjectType;
  content?: Buffer;
}

function sha1(type: ObjectType, content: Buffer): string {
  return createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
}

/** Parses git's size varint (7 bits a byte, little end first); null when `buf` ends inside it. */
export function deltaSizes(buf: Buffer): { base: number; result: number } | null {
  let i = 0;
  const read = (): number | null => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) return null;
      const b = buf[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) return value;
    }
  };
  const base = read();
  if (base === null) return null;
  const result = read();
  return result === null ? null : { base, result };
}

/** git's delta format: copy ranges of the base and insert literal bytes. */
export function applyDelta(delta: Buffer, base: Buffer): Buffer {
  let i = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = delta[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) return value;
    }
  };
  if (varint() !== base.length) throw new Error('delta base size mismatch');
  const out = Buffer.alloc(varint());
  let o = 0;
  while (i < delta.length) {
    const op = delta[i++]!;
    if (op & 0x80) {
      let offset = 0;
      let size = 0;
      for (let bit = 0; bit < 4; bit++) if (op & (1 << bit)) offset += delta[i++]! * 2 ** (8 * bit);
      for (let bit = 0; bit < 3; bit++) if (op & (1 << (4 + bit))) size += delta[i++]! * 2 ** (8 * bit);
      if (size === 0) size = 0x10000;
      base.copy(out, o, offset, offset + size);
      o += size;
    } else if (op) {
      delta.copy(out, o, i, i + op);
      i += op;
      o += op;
    } else {
      throw new Error('delta opcode 0');
    }
  }
  if (o !== out.length) throw new Error('delta result size mismatch');
  return out;
}

function parseCommit(content: Buffer): SeenCommit {
  const head = content.toString('utf8', 0, Math.max(0, content.indexOf('\n\n')));
  const parents: string[] = [];
  let tree = '';
  for (const line of head.split('\n')) {
    if (line.startsWith('tree ')) tree = line.slice(5);
    else if (line.startsWith('parent ')) parents.push(line.slice(7));
  }
  return { parents, tree };
}

/** Entries of a raw tree object: name, mode and id. */
export function parseTree(content: Buffer): Array<{ mode: string; name: string; oid: string }> {
  const entries: Array<{ mode: string; name: string; oid: string }> = [];
  let i = 0;
  while (i < content.length) {
    const space = content.indexOf(0x20, i);
    const nul = content.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > content.length) break;
    entries.push({
      mode: content.toString('latin1', i, space),
      name: content.toString('utf8', space + 1, nul),
      oid: content.toString('hex', nul + 1, nul + 21),
    });
    i = nul + 21;
  }
  return entries;
}

/** A pack, fed in pieces as they arrive. Throws PackStop to end the response. */
class PackScanner {
  private pending = Buffer.alloc(0);
  private phase: 'header' | 'entry' | 'data' | 'trailer' = 'header';
  private count = 0;
  private index = 0;
  private position = 0;
  private entry: Entry | undefined;
  private readonly known = new Map<number, Known>();
  private readonly offsetOf = new Map<string, number>();
  private retained = 0;

  constructor(
    private readonly limits: PackLimits,
    private readonly seen: PackSeen,
  ) {}

  feed(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.phase === 'trailer') return;
      if (this.phase === 'header') {
        const need = 12 - this.pending.length;
        this.pending = Buffer.concat([this.pending, chunk.subarray(pos, pos + need)]);
        pos += Math.min(need, chunk.length - pos);
        if (this.pending.length < 12) return;
        if (this.pending.toString('latin1', 0, 4) !== 'PACK') throw new PackStop('corrupt', 'the server sent no pack');
        this.count = this.pending.readUInt32BE(8);
        this.position = 12;
        this.pending = Buffer.alloc(0);
        this.phase = this.count > 0 ? 'entry' : 'trailer';
        continue;
      }
      if (this.phase === 'entry') {
        const candidate = Buffer.concat([this.pending, chunk.subarray(pos, pos + 64)]);
        const header = this.parseEntryHeader(candidate);
        if (!header) {
          if (candidate.length >= 64) throw new PackStop('corrupt', 'unreadable pack entry header');
          this.pending = candidate;
          return;
        }
        pos += header.length - this.pending.length;
        this.pending = Buffer.alloc(0);
        this.startEntry(header);
        this.position += header.length;
        continue;
      }
      // data: inflate until this entry's zlib stream ends; the rest belongs to the next entry.
      const entry = this.entry!;
      const slice = chunk.subarray(pos);
      entry.inflater.push(slice, false);
      if (entry.inflater.err) throw new PackStop('corrupt', `pack entry at ${entry.offset}: ${entry.inflater.msg || 'inflate failed'}`);
      if (!entry.inflater.ended) {
        this.position += slice.length;
        return;
      }
      const used = slice.length - entry.inflater.strm.avail_in;
      pos += used;
      this.position += used;
      this.finishEntry(entry);
    }
  }

  private parseEntryHeader(buf: Buffer): { length: number; kind: number; size: number; baseOffset?: number; baseOid?: string } | null {
    let i = 0;
    if (buf.length < 1) return null;
    let b = buf[i++]!;
    const kind = (b >> 4) & 7;
    let size = b & 15;
    let shift = 4;
    while (b & 0x80) {
      if (i >= buf.length) return null;
      b = buf[i++]!;
      size += (b & 0x7f) * 2 ** shift;
      shift += 7;
    }
    if (kind === OFS_DELTA) {
      if (i >= buf.length) return null;
      b = buf[i++]!;
      let back = b & 0x7f;
      while (b & 0x80) {
        if (i >= buf.length) return null;
        b = buf[i++]!;
        back = (back + 1) * 128 + (b & 0x7f);
      }
      return { length: i, kind, size, baseOffset: this.position - back };
    }
    if (kind === REF_DELTA) {
      if (i + 20 > buf.length) return null;
      return { length: i + 20, kind, size, baseOid: buf.toString('hex', i, i + 20) };
    }
    if (!TYPES[kind]) throw new PackStop('corrupt', `pack entry of unknown type ${kind}`);
    return { length: i, kind, size };
  }

  private startEntry(header: { kind: number; size: number; baseOffset?: number; baseOid?: string }): void {
    const entry: Entry = { offset: this.position, kind: header.kind, size: header.size, out: 0, inflater: new pako.Inflate() };
    if (header.baseOffset !== undefined) entry.baseOffset = header.baseOffset;
    if (header.baseOid !== undefined) entry.baseOid = header.baseOid;
    const type = TYPES[header.kind];
    if (type) {
      entry.type = type;
      if (this.limits.commitsOnly && type !== 'commit') throw this.stopCommitsRead();
      if (header.size > this.limits.maxObjectBytes)
        throw new PackStop('too-large', `an object of ${header.size} bytes, over the ${this.limits.maxObjectBytes}-byte limit`, { type, size: header.size });
      entry.hash = createHash('sha1').update(`${type} ${header.size}\0`);
      if (type === 'commit' || type === 'tree') entry.chunks = [];
    } else {
      const base = this.baseOf(entry);
      if (base?.type) entry.type = base.type;
      if (this.limits.commitsOnly && entry.type !== 'commit') throw this.stopCommitsRead();
      entry.deltaHead = Buffer.alloc(0);
      if (base?.content) entry.chunks = [];
    }
    entry.inflater.onData = (data: Uint8Array) => this.onData(entry, data);
    this.entry = entry;
    this.phase = 'data';
  }

  private stopCommitsRead(): PackStop {
    return new PackStop('commits-read', 'history read');
  }

  private baseOf(entry: Entry): Known | undefined {
    const offset = entry.baseOffset ?? (entry.baseOid !== undefined ? this.offsetOf.get(entry.baseOid) : undefined);
    return offset === undefined ? undefined : this.known.get(offset);
  }

  private onData(entry: Entry, data: Uint8Array): void {
    entry.out += data.length;
    if (entry.out > entry.size)
      throw new PackStop('corrupt', `pack entry at ${entry.offset} inflates past its declared ${entry.size} bytes`);
    entry.hash?.update(data);
    if (entry.deltaHead) {
      entry.deltaHead = Buffer.concat([entry.deltaHead, Buffer.from(data.subarray(0, 32))]);
      const sizes = deltaSizes(entry.deltaHead);
      if (sizes && sizes.result > this.limits.maxObjectBytes) {
        throw new PackStop('too-large', `an object of ${sizes.result} bytes, over the ${this.limits.maxObjectBytes}-byte limit`, {
          type: entry.type ?? 'delta',
          size: sizes.result,
        });
      }
      // Two varints take at most 20 bytes: a delta whose first 32 say nothing is corrupt.
      if (sizes) delete entry.deltaHead;
      else if (entry.deltaHead.length >= 32) throw new PackStop('corrupt', `pack entry at ${entry.offset}: unreadable delta header`);
    }
    if (entry.chunks) {
      this.retained += data.length;
      if (this.retained > RETAIN_BUDGET_BYTES) delete entry.chunks;
      else entry.chunks.push(Buffer.from(data));
    }
  }

  private finishEntry(entry: Entry): void {
    if (entry.out !== entry.size) throw new PackStop('corrupt', `pack entry at ${entry.offset} is not its declared size`);
    const hashed = entry.hash?.digest('hex');
    const known: Known = {};
    if (entry.type) known.type = entry.type;
    let content: Buffer | undefined = entry.chunks ? Buffer.concat(entry.chunks) : undefined;
    let oid = hashed;
    if (entry.kind === OFS_DELTA || entry.kind === REF_DELTA) {
      const base = this.baseOf(entry)?.content;
      content = content && base ? applyDelta(content, base) : undefined;
      oid = content && entry.type ? sha1(entry.type, content) : undefined;
    }
    if (content && (entry.type === 'commit' || entry.type === 'tree')) known.content = content;
    else if (entry.chunks) this.retained -= entry.out;
    this.known.set(entry.offset, known);
    if (oid) {
      this.offsetOf.set(oid, entry.offset);
      if (content && entry.type === 'commit') this.seen.commits.set(oid, parseCommit(content));
      if (content && entry.type === 'tree') this.seen.trees.set(oid, content);
      if (entry.type === 'blob') this.seen.blobs.add(oid);
    }
    this.entry = undefined;
    this.index += 1;
    this.phase = this.index >= this.count ? 'trailer' : 'entry';
  }
}

/** Splits an upload-pack response into pkt-lines and feeds side-band 1 (the pack) to the scanner. */
class UploadPackReader {
  private pending = Buffer.alloc(0);
  private packBytes = 0;
  private readonly scanner: PackScanner;

  constructor(
    private readonly limits: PackLimits,
    seen: PackSeen,
  ) {
    this.scanner = new PackScanner(limits, seen);
  }

  feed(chunk: Uint8Array): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : Buffer.from(chunk);
    let pos = 0;
    while (this.pending.length - pos >= 4) {
      const length = Number.parseInt(this.pending.toString('latin1', pos, pos + 4), 16);
      if (Number.isNaN(length)) throw new PackStop('corrupt', 'the server sent no pkt-line');
      if (length < 4) {
        pos += 4;
        continue;
      }
      if (this.pending.length - pos < length) break;
      const payload = this.pending.subarray(pos + 4, pos + length);
      pos += length;
      if (payload[0] !== 1) continue;
      this.packBytes += payload.length - 1;
      if (this.packBytes > this.limits.maxPackBytes)
        throw new PackStop('pack-too-large', `a pack of more than ${this.limits.maxPackBytes} bytes`);
      this.scanner.feed(payload.subarray(1));
    }
    this.pending = this.pending.subarray(pos);
  }
}

async function requestBodyText(body: GitHttpRequest['body']): Promise<string> {
  if (!body) return '';
  const parts: Uint8Array[] = [];
  if (Array.isArray(body)) parts.push(...(body as Uint8Array[]));
  else for await (const part of body as AsyncIterable<Uint8Array>) parts.push(part);
  return Buffer.concat(parts).toString('latin1');
}

/**
 * An HttpClient that watches every upload-pack response through a PackScanner and ends
 * it (the socket is closed) at the first object over the limits. What it saw, and why it
 * stopped, is in `seen`.
 */
export function guardedHttp(inner: HttpClient, limits: PackLimits): { http: HttpClient; seen: PackSeen } {
  const seen: PackSeen = { wants: [], commits: new Map(), trees: new Map(), blobs: new Set() };
  const http: HttpClient = {
    async request(req): Promise<GitHttpResponse> {
      if (req.method !== 'POST' || !/\/git-upload-pack$/.test(new URL(req.url).pathname)) return inner.request(req);
      // The body is read once here and handed on as one buffer (isomorphic-git sends one anyway).
      const text = await requestBodyText(req.body);
      seen.wants.push(...[...text.matchAll(/want ([0-9a-f]{40})/g)].map((m) => m[1]!));
      const once = Buffer.from(text, 'latin1');
      // An array, as isomorphic-git passes it: its http client then sends a Content-Length.
      const res = await inner.request({ ...req, body: [once] as unknown as GitHttpRequest['body'] });
      const body = res.body;
      if (!body) return res;
      const reader = new UploadPackReader(limits, seen);
      const chunks = body[Symbol.asyncIterator]();
      const watched: AsyncIterableIterator<Uint8Array> = {
        async next() {
          const step = await chunks.next();
          if (step.done) return step;
          try {
            reader.feed(step.value);
          } catch (err) {
            if (err instanceof PackStop) seen.stop ??= err;
            await chunks.return?.();
            throw err;
          }
          return step;
        },
        async return(value?: unknown) {
          return chunks.return ? chunks.return(value) : { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return watched;
        },
      };
      return { ...res, body: watched };
    },
  };
  return { http, seen };
}
