// Git objects as bytes, built in memory (pure): the blobs and trees of a rendered file
// list and the tenant commit on top, hashed exactly as git (and isomorphic-git) would.
// Publish sends these bytes as they are, so nothing here may change a single byte.
import { createHash } from 'node:crypto';
import { RenderedOutputError } from '../core/errors.js';
import type { RenderedFile } from '../core/manifest.js';

/** A rendered file; content may also be bytes. */
export type PublishFile = Omit<RenderedFile, 'content'> & { content: string | Uint8Array };

export const DEFAULT_AUTHOR = { name: 'Flotilla', email: 'flotilla@localhost' };

/** One git object: its id, type and content (without the `<type> <size>\0` header). */
export interface GitObjectBytes {
  oid: string;
  type: 'blob' | 'tree' | 'commit';
  content: Buffer;
}

export interface BuiltTree {
  /** Root tree id. */
  oid: string;
  /** Every blob and tree the root needs, children before parents. */
  objects: GitObjectBytes[];
}

export function hashObject(type: GitObjectBytes['type'], content: Buffer): string {
  return createHash('sha1').update(`${type} ${content.length}\0`).update(content).digest('hex');
}

interface DirNode {
  files: Map<string, { oid: string; mode: string }>;
  dirs: Map<string, DirNode>;
}

/**
 * The git tree of a rendered file list, hashed in memory (pure). Paths are checked:
 * relative, no empty/`.`/`..` segments, no duplicates, no file that is also a folder.
 */
export function buildTree(tenant: string, files: readonly PublishFile[]): BuiltTree {
  const root: DirNode = { files: new Map(), dirs: new Map() };
  const objects: GitObjectBytes[] = [];
  const seenBlobs = new Set<string>();
  for (const file of files) {
    const fail = (why: string): never => {
      throw new RenderedOutputError(file.path, tenant, why);
    };
    const parts = file.path.split('/');
    if (file.path.includes('\\') || file.path.includes('\0')) fail('path holds a backslash or NUL');
    if (parts.some((p) => p === '' || p === '.' || p === '..' || p === '.git'))
      fail('path must be relative with no empty, ".", ".." or ".git" segment');
    const mode = file.mode === 0o755 ? '100755' : file.mode === 0o644 ? '100644' : fail(`mode ${file.mode.toString(8)} is not 644 or 755`);
    const content = typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : Buffer.from(file.content);
    const oid = hashObject('blob', content);
    if (!seenBlobs.has(oid)) {
      seenBlobs.add(oid);
      objects.push({ oid, type: 'blob', content });
    }
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      if (dir.files.has(part)) fail(`"${part}" is both a file and a folder`);
      let next = dir.dirs.get(part);
      if (!next) {
        next = { files: new Map(), dirs: new Map() };
        dir.dirs.set(part, next);
      }
      dir = next;
    }
    const name = parts[parts.length - 1] as string;
    if (dir.files.has(name)) fail('duplicate path');
    if (dir.dirs.has(name)) fail(`"${name}" is both a file and a folder`);
    dir.files.set(name, { oid, mode });
  }
  const writeDir = (dir: DirNode): string => {
    const entries: { sortKey: Buffer; bytes: Buffer }[] = [];
    for (const [name, sub] of dir.dirs) {
      const oid = writeDir(sub);
      // git orders a folder as if its name ended with "/".
      entries.push({ sortKey: Buffer.from(`${name}/`), bytes: treeEntry('40000', name, oid) });
    }
    for (const [name, { oid, mode }] of dir.files) {
      entries.push({ sortKey: Buffer.from(name), bytes: treeEntry(mode, name, oid) });
    }
    entries.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    const content = Buffer.concat(entries.map((e) => e.bytes));
    const oid = hashObject('tree', content);
    objects.push({ oid, type: 'tree', content });
    return oid;
  };
  return { oid: writeDir(root), objects };
}

/** One entry of a tree object's content: `<mode> <name>\0<20-byte id>`. */
export function treeEntry(mode: string, name: string, oid: string): Buffer {
  return Buffer.concat([Buffer.from(`${mode} ${name}\0`), Buffer.from(oid, 'hex')]);
}

/** The entries of a tree object's content: mode, name, object id. */
export function treeEntries(content: Buffer): { mode: string; name: string; oid: string }[] {
  const entries: { mode: string; name: string; oid: string }[] = [];
  let at = 0;
  while (at < content.length) {
    const space = content.indexOf(0x20, at);
    const nul = content.indexOf(0, space);
    entries.push({
      mode: content.subarray(at, space).toString('latin1'),
      name: content.subarray(space + 1, nul).toString('utf8'),
      oid: content.subarray(nul + 1, nul + 21).toString('hex'),
    });
    at = nul + 21;
  }
  return entries;
}

/** The message of a tenant commit; its `Flotilla-Source` trailer is what core/git.ts sourceTrailer reads back. */
export function tenantCommitMessage(slug: string, source: { repo: string; commit: string }): string {
  return `Render tenant ${slug} from ${source.repo}@${source.commit.slice(0, 12)}\n\nFlotilla-Source: ${source.commit}\n`;
}

export interface CommitFields {
  tree: string;
  parents: readonly string[];
  author: { name: string; email: string; timestamp: number };
  message: string;
  /** Signs the unsigned commit text; returns an armored signature. */
  sign?: (payload: string) => string;
}

/** What isomorphic-git does to a message (and a signature): no CR, no leading newlines, one final newline. */
const normalizeNewlines = (text: string): string => `${text.replace(/\r/g, '').replace(/^\n+/, '').replace(/\n+$/, '')}\n`;

/**
 * A commit object, byte for byte as isomorphic-git's commit() writes it (a test holds
 * the two equal, signed and unsigned), built in memory: commit() resolves refs, takes
 * the index lock and writes a loose file, ~12 ms a call here, and a fleet-wide change
 * makes a thousand commits. Author and committer are the same, in UTC.
 */
export function buildCommit(fields: CommitFields): GitObjectBytes {
  const who = `${fields.author.name} <${fields.author.email}> ${fields.author.timestamp} +0000`;
  const headers = `tree ${fields.tree}\n${fields.parents.map((p) => `parent ${p}\n`).join('')}author ${who}\ncommitter ${who}\n`;
  const message = normalizeNewlines(fields.message);
  const unsigned = `${headers}\n${message}`;
  let text = unsigned;
  if (fields.sign) {
    const signature = normalizeNewlines(fields.sign(unsigned)).trim().split('\n').map((line) => ` ${line}`).join('\n');
    text = `${headers}gpgsig${signature}\n\n${message}`;
  }
  const content = Buffer.from(text, 'utf8');
  return { oid: hashObject('commit', content), type: 'commit', content };
}
