// A fleet repository may hold only `tenants/*` branches (publish --source-repo allows
// it), so its HEAD names a branch that does not exist and git leaves HEAD out of the
// refs it advertises. isomorphic-git's fetch then looks HEAD up anyway, to report the
// remote's default branch, and fails every fetch with "Could not find HEAD" after the
// pack arrived and before it is stored. The agent needs only its own branch and never
// reads the default branch, so when the advertisement names no HEAD this says the
// default branch is the one being fetched; everything else is passed on byte for byte.
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';

/** The advertisement with `symref=HEAD:<branch ref>` added to its capabilities when it names no HEAD. */
export function advertiseHeadAs(advertisement: Buffer, branchRef: string): Buffer {
  const lines: Buffer[] = [];
  let at = 0;
  while (at + 4 <= advertisement.length) {
    const length = parseInt(advertisement.subarray(at, at + 4).toString('latin1'), 16);
    if (!Number.isFinite(length)) return advertisement;
    const size = length === 0 ? 4 : length;
    if (size < 4 || at + size > advertisement.length) return advertisement;
    lines.push(advertisement.subarray(at, at + size));
    at += size;
  }
  if (at !== advertisement.length) return advertisement;
  const payloads = lines.map((l) => l.subarray(4).toString('latin1'));
  if (payloads.some((p) => /\bsymref=HEAD:/.test(p) || /^[0-9a-f]{40} HEAD(\0|\n|$)/.test(p))) return advertisement;
  const first = payloads.findIndex((p) => p.includes('\0'));
  if (first === -1) return advertisement;
  const payload = payloads[first]!.replace(/\n?$/, ` symref=HEAD:${branchRef}\n`);
  const bytes = Buffer.from(payload, 'latin1');
  lines[first] = Buffer.concat([Buffer.from((bytes.length + 4).toString(16).padStart(4, '0'), 'latin1'), bytes]);
  return Buffer.concat(lines);
}

async function* once(bytes: Buffer): AsyncIterableIterator<Uint8Array> {
  yield bytes;
}

/** `inner`, with the upload-pack ref advertisement passed through advertiseHeadAs. */
export function headAsFetchedBranch(inner: HttpClient, branch: string): HttpClient {
  const branchRef = branch.startsWith('refs/') ? branch : `refs/heads/${branch}`;
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const res = await inner.request(req);
      const url = new URL(req.url);
      if ((req.method ?? 'GET') !== 'GET' || !url.pathname.endsWith('/info/refs') || url.searchParams.get('service') !== 'git-upload-pack' || !res.body) return res;
      const chunks: Uint8Array[] = [];
      for await (const chunk of res.body) chunks.push(chunk);
      return { ...res, body: once(advertiseHeadAs(Buffer.concat(chunks), branchRef)) };
    },
  };
}
