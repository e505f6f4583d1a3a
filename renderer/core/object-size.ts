// The size an object of a local repository declares, read without inflating the object:
// a loose object's header ("blob 209715200\0") is in its first zlib bytes; a packed one's
// size is in its pack entry header, found through the pack index (a delta's result size
// in the delta's first bytes). readCommitFiles asks before it reads a blob whole, so a
// large object a repository already holds is refused by its size, not by running out of memory.
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pako from 'pako';
import { deltaSizes } from './pack-guard.js';

const OFS_DELTA = 6;
const REF_DELTA = 7;

/** The first bytes of a file, never more. */
async function head(path: string, offset: number, length: number): Promise<Buffer | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Inflates the start of a zlib stream: at most the first `want` bytes of what it holds. */
function inflateStart(compressed: Buffer, want: number): Buffer {
  const inflater = new pako.Inflate({ chunkSize: want });
  let out: Buffer | undefined;
  inflater.onData = (chunk) => {
    out ??= Buffer.from(chunk);
  };
  // Z_SYNC_FLUSH: hand over what the prefix gives, without asking for the rest of the stream.
  inflater.push(compressed, 2);
  return out ?? Buffer.alloc(0);
}

/** Where `oid` is in a pack, from its version 2 index; undefined when the index does not list it. */
function offsetInIndex(idx: Buffer, oid: string): number | undefined {
  if (idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) return undefined;
  const sha = Buffer.from(oid, 'hex');
  const fanout = (i: number) => (i < 0 ? 0 : idx.readUInt32BE(8 + i * 4));
  const count = fanout(255);
  let lo = fanout(sha[0]! - 1);
  let hi = fanout(sha[0]!);
  const shaAt = 8 + 256 * 4;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const cmp = idx.compare(sha, 0, 20, shaAt + mid * 20, shaAt + mid * 20 + 20);
    if (cmp === 0) {
      const offsetsAt = shaAt + count * 24;
      const small = idx.readUInt32BE(offsetsAt + mid * 4);
      if (!(small & 0x80000000)) return small;
      return Number(idx.readBigUInt64BE(offsetsAt + count * 4 + (small & 0x7fffffff) * 8));
    }
    if (cmp < 0) lo = mid + 1;
    else hi = mid;
  }
  return undefined;
}

/** The size a packed entry declares: its own, or for a delta the size of the object it makes. */
async function packedSize(pack: string, offset: number): Promise<number | undefined> {
  const buf = await head(pack, offset, 512);
  if (!buf || buf.length === 0) return undefined;
  let i = 0;
  let b = buf[i++]!;
  const kind = (b >> 4) & 7;
  let size = b & 15;
  let shift = 4;
  while (b & 0x80 && i < buf.length) {
    b = buf[i++]!;
    size += (b & 0x7f) * 2 ** shift;
    shift += 7;
  }
  if (kind !== OFS_DELTA && kind !== REF_DELTA) return size;
  if (kind === OFS_DELTA) while (i < buf.length && buf[i++]! & 0x80);
  else i += 20;
  return deltaSizes(inflateStart(buf.subarray(i), 32))?.result;
}

/** The declared size of `oid` in the bare repository `gitdir`, or undefined when it is not there. */
export async function declaredObjectSize(gitdir: string, oid: string): Promise<number | undefined> {
  const loose = await head(join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2)), 0, 256);
  if (loose) {
    const header = inflateStart(loose, 64);
    const match = /^[a-z]+ (\d+)\0/.exec(header.toString('latin1'));
    return match ? Number(match[1]) : undefined;
  }
  const packDir = join(gitdir, 'objects', 'pack');
  const names = await readdir(packDir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.idx'))) {
    const offset = offsetInIndex(await readFile(join(packDir, name)), oid);
    if (offset !== undefined) return packedSize(join(packDir, name.replace(/\.idx$/, '.pack')), offset);
  }
  return undefined;
}
