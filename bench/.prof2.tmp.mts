import { startGitServer } from '/work/main/test/support/git-server.js';
import { publishTenants, buildTree } from '/work/main/renderer/publish.js';
import { listRemoteBranches, hasObject, pushBranch } from '/work/main/renderer/core/git.js';
import git from 'isomorphic-git';
import fs from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const s = await startGitServer();
await s.createBareRepo('fleet.git');
const url = s.url('fleet.git');
const work = join(await mkdtemp(join(tmpdir(), 'prof-')), 'c.git');
const t = (i: number, tag: string) => ({ slug: `t${i}`, files: Array.from({length: 8}, (_, k) => ({ path: `d${k%3}/f${k}.yml`, content: `${tag} ${i} ${k}\n`, mode: 0o644 })) });
// seed 1000 via publish of a local commit + CLI push
const base = Array.from({length: 1000}, (_, i) => t(i, 'v1'));
let t0 = performance.now();
// seed: publish 1 to make repo non-empty, then use git CLI push of all refs from a locally built cache
await publishTenants({ repoUrl: url, workDir: work, tenants: base.slice(0, 1), source: { repo: 'x', commit: '1'.repeat(40) } });
console.log('first', performance.now() - t0);
const lap = (label: string) => { console.log(label, Math.round(performance.now() - t0)); t0 = performance.now(); };
t0 = performance.now();
const trees = base.map((x) => buildTree(x.slug, x.files)); lap('buildTree x1000');
for (const tr of trees) for (const o of tr.objects) await git.writeObject({ fs, gitdir: work, type: o.type, object: o.content, format: 'content' });
lap('writeObject all');
const { execFileSync } = await import('node:child_process');
for (let i = 0; i < 1000; i++) {
  const oid = await git.commit({ fs, gitdir: work, ref: `refs/heads/tenants/t${i}`, tree: trees[i]!.oid, parent: [], message: 'm', author: { name: 'a', email: 'b', timestamp: 0, timezoneOffset: 0 } });
}
lap('commit x1000');
execFileSync('git', ['--git-dir', work, 'push', '-q', url, 'refs/heads/tenants/*:refs/heads/tenants/*'], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } });
lap('cli push all');
const cache = {};
const remote = await listRemoteBranches(url, 'tenants/'); lap('ls-refs');
for (const oid of remote.values()) await hasObject(work, oid, undefined, cache); lap('hasObject x1000');
for (const oid of remote.values()) await git.readCommit({ fs, gitdir: work, oid, cache }); lap('readCommit x1000');
const changed = base.map((x, i) => i === 5 ? t(5, 'v2') : x);
const r = await publishTenants({ repoUrl: url, workDir: work, tenants: changed, source: { repo: 'x', commit: '2'.repeat(40) } }); lap('publish 1 changed ' + JSON.stringify(r.committed));
const changed2 = base.map((x, i) => i === 5 ? t(5, 'v3') : x);
await publishTenants({ repoUrl: url, workDir: work, tenants: changed2, source: { repo: 'x', commit: '2'.repeat(40) } }); lap('publish 1 changed again');
await s.stop();
