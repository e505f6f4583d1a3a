// A fleet repository may hold only `tenants/*` branches (publish --source-repo allows
// it), so its HEAD names a branch that does not exist and git leaves HEAD out of the
// refs it advertises. isomorphic-git's fetch then looks HEAD up anyway, to report the
// remote's default branch, and fails every fetch with "Could not find HEAD" after the
// pack arrived and before it is stored (and a fetch of every branch fails before it
// asks for anything). Flotilla never reads the default branch, so when the advertisement
// names no HEAD this makes it name the branch being fetched (or the first one), as git
// would advertise a HEAD pointing there; any other advertisement passes byte for byte.
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';

/**
 * The advertisement as git would send it had HEAD named `branchRef` (or, without one, the
 * first branch advertised): a `HEAD` line first, carrying the capabilities and
 * `symref=HEAD:<ref>`. An advertisement that names HEAD, or no branch, is returned as it is.
 */
export function advertiseHeadAs(advertisement: Buffer, branchRef?: string): Buffer {
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
  const refs = lines.map((l) => /^([0-9a-f]{40}) ([^\0\n]+)(?:\0([^\n]*))?\n?$/.exec(l.subarray(4).toString('latin1')));
  if (refs.some((r) => r?.[2] === 'HEAD')) return advertisement;
  const first = refs.findIndex((r) => r?.[3] !== undefined);
  const target = refs.find((r) => r && (branchRef ? r[2] === branchRef : r[2]!.startsWith('refs/heads/')));
  if (first === -1 || !target) return advertisement;
  const pkt = (payload: string) => {
    const bytes = Buffer.from(payload, 'latin1');
    return Buffer.concat([Buffer.from((bytes.length + 4).toString(16).padStart(4, '0'), 'latin1'), bytes]);
  };
  const [, oid, ref, capabilities] = refs[first]!;
  return Buffer.concat([
    ...lines.slice(0, first),
    pkt(`${target[1]} HEAD\0${capabilities} symref=HEAD:${target[2]}\n`),
    pkt(`${oid} ${ref}\n`),
    ...lines.slice(first + 1),
  ]);
}

async function* once(bytes: Buffer): AsyncIterableIterator<Uint8Array> {
  yield bytes;
}

/** `inner`, with the upload-pack ref advertisement passed through advertiseHeadAs (for `branch`, or the first branch). */
export function headAsFetchedBranch(inner: HttpClient, branch?: string): HttpClient {
  const branchRef = branch === undefined || branch.startsWith('refs/') ? branch : `refs/heads/${branch}`;
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
