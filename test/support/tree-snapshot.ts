// Every entry under a directory, as text a test compares to show "nothing changed":
// type, mode and content (or link target). Bytes that are not UTF-8 are kept as base64,
// so two different binary files never look equal.
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export async function snapshotTree(dir: string, opts: { dirs?: boolean } = {}): Promise<Record<string, string>> {
  const withDirs = opts.dirs ?? true;
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[path] = `link -> ${await readlink(join(dir, path))}`;
      else if (st.isDirectory()) {
        if (withDirs) out[path] = `dir ${mode}`;
        await walk(path);
      } else {
        const bytes = await readFile(join(dir, path));
        const text = bytes.toString('utf8');
        out[path] = Buffer.from(text, 'utf8').equals(bytes) ? `file ${mode} ${text}` : `file ${mode} base64:${bytes.toString('base64')}`;
      }
    }
  };
  await walk('');
  return out;
}
