import { access, chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestError, UnsafePathError } from '../renderer/core/errors.js';
import { MAX_MANAGED_FILE_BYTES, sha256, type Manifest } from '../renderer/core/manifest.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import {
  backupAndSwap,
  detectDrift,
  patchInstalledEnv,
  planApply,
  planChangesSomething,
  restoreBackup,
  secretsToGenerate,
  stageApply,
  startApplyJournal,
  stagingDirFor,
  type ApplyPlan,
} from './apply.js';
import { finishJournal, journalPath, readJournal, recoverFromJournal, setPhase } from './journal.js';
import { localFiles, type LocalFiles } from './local-files.js';
import { renderPlanText } from './plan-text.js';
import { snapshotTree } from '../test/support/tree-snapshot.js';

const snapshot = (dir: string) => snapshotTree(dir);

const exists = (path: string) => access(path).then(() => true, () => false);

type TreeSpec = Record<string, string | { content: string; mode: number }>;

function release(spec: TreeSpec, over: Partial<Manifest> = {}): { manifest: Manifest; tree: Map<string, string> } {
  const tree = new Map<string, string>();
  const files = Object.entries(spec)
    .map(([path, v]) => {
      const { content, mode } = typeof v === 'string' ? { content: v, mode: 0o644 } : v;
      tree.set(path, content);
      return { path, sha256: sha256(content), mode };
    })
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  const manifest: Manifest = {
    schemaVersion: 1,
    tenant: 'linda',
    mode: 'adopted',
    imageTag: 'v1',
    source: { repo: 'https://git.example/fleet.git', commit: 'a'.repeat(40) },
    files,
    envPatch: { IMAGE_TAG: 'v1' },
    requiredVariables: ['IMAGE_TAG', 'DB_PASSWORD'],
    secrets: [],
    ...over,
  };
  return { manifest, tree };
}

const compose = (tag: string) =>
  `services:\n  app:\n    image: registry.local/app:\${IMAGE_TAG}\n    labels: [v${tag}]\n    environment:\n      DB_PASSWORD: \${DB_PASSWORD}\n`;
const HOST_ENV = '# host secrets\nDB_PASSWORD=s3cret-host-value\nIMAGE_TAG=v1\n';

let root: string;
let install: string;
let state: string;
let outside: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-apply-'));
  install = join(root, 'stack');
  state = join(root, 'state');
  outside = join(root, 'outside');
  await mkdir(install);
  await mkdir(outside);
  await writeFile(join(outside, 'victim.conf'), 'not yours\n');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const V1 = () =>
  release({
    'docker-compose.yml': compose('1'),
    'nginx/site.conf': 'server { listen 80; }\n',
    'old.conf': 'retired in v2\n',
    'edited.conf': 'retired in v2 too\n',
    'scripts/health.sh': { content: '#!/bin/sh\nexit 0\n', mode: 0o755 },
  });
const V2 = () =>
  release(
    {
      'docker-compose.yml': compose('2'),
      'nginx/site.conf': 'server { listen 80; }\n',
      'nginx/extra.conf': 'gzip on;\n',
      'scripts/health.sh': { content: '#!/bin/sh\nexit 0\n', mode: 0o755 },
    },
    { imageTag: 'v2', envPatch: { IMAGE_TAG: 'v2', LOG_LEVEL: 'info' }, source: { repo: 'r', commit: 'b'.repeat(40) } },
  );

/** A host on v1, as a previous apply left it, plus files Flotilla never managed. */
async function hostOnV1(): Promise<Manifest> {
  const v1 = V1();
  for (const file of v1.manifest.files) {
    await localFiles.writeManaged(install, file.path, v1.tree.get(file.path)!, file.mode);
  }
  await writeFile(join(install, '.env'), HOST_ENV, { mode: 0o600 });
  await writeFile(join(install, 'host-notes.txt'), 'not in any manifest\n', { mode: 0o640 });
  await mkdir(join(install, 'data'));
  await writeFile(join(install, 'data', 'db.sqlite'), 'precious\n');
  return v1.manifest;
}

/** Runs the file steps of an apply in DESIGN.md's order with compose in between; returns the plan. */
async function applyAll(plan: ApplyPlan, composeRunner: RecordingCompose, files: LocalFiles = localFiles) {
  const stagingDir = await stageApply(plan, stagingDirFor(install), files);
  await composeRunner.config({ dir: stagingDir, project: 'linda' });
  await composeRunner.pull({ dir: stagingDir, project: 'linda' });
  const journal = await startApplyJournal(plan, { stateDir: state, targetCommit: 'c2', fromCommit: 'c1', stagingDir });
  const swap = await backupAndSwap(plan, journal, files);
  await patchInstalledEnv(plan, journal, files);
  await composeRunner.up({ dir: install, project: 'linda' });
  await setPhase(journal, 'up');
  await setPhase(journal, 'verified');
  return { journal, swap, stagingDir };
}

describe('planApply', () => {
  it('classifies every managed file and deletes a retired file only if it still has the hash Flotilla wrote', async () => {
    const previous = await hostOnV1();
    await writeFile(join(install, 'edited.conf'), 'the operator changed this\n');
    const v2 = V2();
    const before = await snapshot(install);
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    expect(await snapshot(install)).toEqual(before);

    expect(plan.files.map((f) => [f.path, f.status, f.action])).toEqual([
      ['docker-compose.yml', 'modified', 'write'],
      ['nginx/extra.conf', 'created', 'write'],
      ['nginx/site.conf', 'unchanged', 'none'],
      ['old.conf', 'deleted', 'delete'],
      ['scripts/health.sh', 'unchanged', 'none'],
    ]);
    expect(plan.kept).toEqual([
      { path: 'edited.conf', reason: 'left the manifest but was changed on this host since Flotilla wrote it' },
    ]);
    expect(plan.files[0]!.diff).toContain('-    labels: [v1]\n+    labels: [v2]\n');
    expect(plan.env.changed).toEqual(['IMAGE_TAG']);
    expect(plan.env.added).toEqual(['LOG_LEVEL']);
    expect(plan.env.after).toBe(`${HOST_ENV.replace('IMAGE_TAG=v1', 'IMAGE_TAG=v2')}# Added by fleet env-patch\nLOG_LEVEL=info\n`);
    expect(plan.coverage).toEqual({ required: ['DB_PASSWORD', 'IMAGE_TAG'], missing: [] });
    expect(planChangesSomething(plan)).toBe(true);
  });

  it('reports a mode-only change as modified and nothing to do when the host already matches', async () => {
    const previous = await hostOnV1();
    const v1 = V1();
    const same = await planApply({ installDir: install, manifest: v1.manifest, files: v1.tree, previousManifest: previous });
    expect(same.files.every((f) => f.status === 'unchanged')).toBe(true);
    expect(planChangesSomething(same)).toBe(false);

    await chmod(join(install, 'scripts/health.sh'), 0o644);
    const plan = await planApply({ installDir: install, manifest: v1.manifest, files: v1.tree, previousManifest: previous });
    const script = plan.files.find((f) => f.path === 'scripts/health.sh')!;
    expect(script).toMatchObject({ status: 'modified', action: 'write', mode: 0o755, modeBefore: 0o644 });
    expect(renderPlanText(plan)).toMatch(/modified\s+scripts\/health\.sh\s+17 B -> 17 B\s+mode 0644 -> 0755/);
  });

  it('names the variables compose would blank or stop on with the patched .env and its environment', async () => {
    // frappe_docker's image line: ERPNEXT_VERSION is needed only while CUSTOM_TAG is unset or empty.
    const frappe = `${compose('2')}      IMAGE: \${CUSTOM_IMAGE:-frappe/erpnext}:\${CUSTOM_TAG:-$ERPNEXT_VERSION}\n      HOME_DIR: \${HOME:?}\n`;
    const v2 = release({ 'docker-compose.yml': frappe }, { envPatch: { IMAGE_TAG: 'v2', CUSTOM_TAG: '' } });
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree });
    expect(plan.coverage.missing).toEqual(['DB_PASSWORD', 'ERPNEXT_VERSION', 'HOME']);
    expect(plan.env.existed).toBe(false);
    expect(renderPlanText(plan)).toContain('missing DB_PASSWORD, ERPNEXT_VERSION, HOME: ');

    await writeFile(join(install, '.env'), 'DB_PASSWORD=x\nCUSTOM_TAG=v15\n');
    const covered = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, composeEnv: { HOME: '/root' } });
    // The patch empties CUSTOM_TAG again, so the default and its name are back in use.
    expect(covered.coverage.missing).toEqual(['ERPNEXT_VERSION']);
  });

  it('prints the hooks that will run around the swap and when the apply may happen', async () => {
    const v2 = V2();
    const none = renderPlanText(await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree }));
    expect(none).toContain('around the swap:\n  no hooks\n');
    expect(none).toContain('applies: any time (no window in the manifest');
    v2.manifest.windows = ['Sun 02:00-05:00 Europe/Berlin'];
    v2.manifest.hooks = {
      preSwap: [{ name: 'dump', run: ['compose', 'exec', '-T', 'postgres', 'pg_dump', 'app'], keep: 7 }],
      postUp: [{ name: 'migrate', run: ['compose', 'exec', '-T', 'api', 'npm', 'run', 'migrate'], timeoutSeconds: 900 }],
    };
    const text = renderPlanText(await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree }));
    expect(text).toContain(
      'around the swap:\n  pre-swap  dump: compose exec -T postgres pg_dump app (keeps 7)\n  post-up   migrate: compose exec -T api npm run migrate (timeout 900 s)\n',
    );
    expect(text).toContain('applies: within Sun 02:00-05:00 Europe/Berlin (the fleet');
  });

  it('puts generated secrets in the patch and prints only their names', async () => {
    const v2 = V2();
    v2.manifest.mode = 'managed';
    v2.manifest.secrets = ['DB_PASSWORD', 'SESSION_KEY'];
    await writeFile(join(install, '.env'), 'SESSION_KEY=kept\n');
    const names = secretsToGenerate(v2.manifest, 'SESSION_KEY=kept\n');
    expect(names).toEqual(['DB_PASSWORD']);
    // A key set centrally is decrypted on the host, never generated.
    expect(secretsToGenerate({ ...v2.manifest, encryptedSecrets: { DB_PASSWORD: 'armored' } }, 'SESSION_KEY=kept\n')).toEqual([]);
    const plan = await planApply({
      installDir: install,
      manifest: v2.manifest,
      files: v2.tree,
      generatedSecrets: { DB_PASSWORD: 'generated-value-xyz' },
    });
    expect(plan.coverage.missing).toEqual([]);
    expect(plan.env.after).toContain('DB_PASSWORD=generated-value-xyz');
    const text = renderPlanText(plan);
    expect(text).toContain('added     DB_PASSWORD=(generated secret, not shown)');
    expect(text).toContain('added     LOG_LEVEL="info"');
    expect(text).not.toContain('generated-value-xyz');
    expect(text).not.toContain('kept');
  });

  describe('refuses a bad commit or an unsafe install dir before writing anything', () => {
    const refusals: [string, () => Promise<{ manifest: Manifest; tree: Map<string, string> }>, RegExp, Function][] = [
      ['a path with ..', async () => withFile('../outside/victim.conf', 'pwned\n'), /segment "\.\." is not allowed/, ManifestError],
      ['an absolute path', async () => withFile(join(outside, 'victim.conf'), 'pwned\n'), /absolute path/, ManifestError],
      [
        'a path through a symlinked directory',
        async () => {
          await symlink(outside, join(install, 'conf.d'));
          return withFile('conf.d/victim.conf', 'pwned\n');
        },
        /conf\.d is a symlink/,
        UnsafePathError,
      ],
      [
        'a managed file that is a symlink on disk',
        async () => {
          await symlink(join(outside, 'victim.conf'), join(install, 'app.conf'));
          return withFile('app.conf', 'pwned\n');
        },
        /the file is a symlink/,
        UnsafePathError,
      ],
      [
        'a sha256 that does not match',
        async () => {
          const r = withFile('app.conf', 'declared\n');
          r.tree.set('app.conf', 'tampered\n');
          return r;
        },
        /app\.conf.*sha256 [0-9a-f]{64} does not match/,
        ManifestError,
      ],
      [
        'a file over the size limit',
        async () => withFile('huge.conf', 'x'.repeat(MAX_MANAGED_FILE_BYTES + 1)),
        /over the 4194304-byte limit/,
        ManifestError,
      ],
      [
        'a duplicate path',
        async () => {
          const r = withFile('app.conf', 'one\n');
          r.manifest.files.push({ ...r.manifest.files.find((f) => f.path === 'app.conf')! });
          return r;
        },
        /duplicate path/,
        ManifestError,
      ],
      [
        'a file missing from the commit',
        async () => {
          const r = withFile('app.conf', 'one\n');
          r.tree.delete('app.conf');
          return r;
        },
        /missing from the commit/,
        ManifestError,
      ],
      ['.env as a managed file', async () => withFile('.env', 'DB_PASSWORD=overwritten\n'), /\.env is patched, never replaced/, ManifestError],
    ];

    function withFile(path: string, content: string) {
      const r = V2();
      r.manifest.files.push({ path, sha256: sha256(content), mode: 0o644 });
      r.tree.set(path, content);
      return r;
    }

    it.each(refusals)('%s', async (_name, make, message, errorClass) => {
      const previous = await hostOnV1();
      const { manifest, tree } = await make();
      const before = { install: await snapshot(install), outside: await snapshot(outside) };
      const err = await planApply({ installDir: install, manifest, files: tree, previousManifest: previous }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(errorClass);
      expect((err as Error).message).toMatch(message);
      expect({ install: await snapshot(install), outside: await snapshot(outside) }).toEqual(before);
      expect(await exists(stagingDirFor(install))).toBe(false);
      expect(await exists(journalPath(state))).toBe(false);
    });
  });

  it('keeps a retired file that is now a symlink and reports it', async () => {
    const previous = await hostOnV1();
    await rm(join(install, 'old.conf'));
    await symlink(join(outside, 'victim.conf'), join(install, 'old.conf'));
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    expect(plan.kept.map((k) => k.path)).toEqual(['old.conf']);
    expect(plan.kept[0]!.reason).toMatch(/not safe to touch.*symlink/);
    expect(plan.files.some((f) => f.path === 'old.conf')).toBe(false);
  });
});

describe('apply steps', () => {
  it('stages the full tree with the patched .env, so config and pull see exactly what up sees', async () => {
    const previous = await hostOnV1();
    await writeFile(join(install, 'edited.conf'), 'the operator changed this\n');
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    const recorder = new RecordingCompose();
    const { swap } = await applyAll(plan, recorder);

    expect(recorder.ops).toEqual(['config', 'pull', 'up']);
    const [config, pull, up] = recorder.calls;
    expect(config!.dir).toBe(stagingDirFor(install));
    expect(pull!.dir).toBe(stagingDirFor(install));
    expect(up!.dir).toBe(install);
    expect(config!.files).toEqual(up!.files);
    expect(up!.files['.env']).toContain('IMAGE_TAG=v2\n');
    expect(up!.files['.env']).toContain('DB_PASSWORD=s3cret-host-value\n');

    expect(swap).toEqual({ written: ['docker-compose.yml', 'nginx/extra.conf'], deleted: ['old.conf'], kept: [] });
    const after = await snapshot(install);
    expect(after['docker-compose.yml']).toBe(`file 644 ${compose('2')}`);
    expect(after['nginx/extra.conf']).toBe('file 644 gzip on;\n');
    expect(after['scripts/health.sh']).toBe('file 755 #!/bin/sh\nexit 0\n');
    expect(after['old.conf']).toBeUndefined();
    expect(after['edited.conf']).toBe('file 644 the operator changed this\n');
    expect(after['host-notes.txt']).toBe('file 640 not in any manifest\n');
    expect(after['data/db.sqlite']).toBe('file 644 precious\n');
    expect(after['.env']).toBe(`file 600 ${plan.env.after}`);
  });

  it('finishes by removing the journal, the backups and the staging tree', async () => {
    const previous = await hostOnV1();
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    const { journal, stagingDir } = await applyAll(plan, new RecordingCompose());
    expect(await readJournal(state)).toMatchObject({ record: { phase: 'verified', targetCommit: 'c2' } });
    await finishJournal(journal);
    expect(await readJournal(state)).toBeUndefined();
    expect(await exists(journal.record.backupDir)).toBe(false);
    expect(await exists(stagingDir)).toBe(false);
  });

  it('restores every file and .env and removes created files when up fails', async () => {
    const previous = await hostOnV1();
    const original = await snapshot(install);
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    const recorder = new RecordingCompose({ fail: { up: 'container app is unhealthy' } });
    const err = await applyAll(plan, recorder).catch((e: unknown) => e);
    expect((err as Error).message).toBe('up failed: container app is unhealthy');

    const journal = (await readJournal(state))!;
    expect(journal.record.phase).toBe('env-patched');
    const restored = await restoreBackup(journal);
    expect(restored.restored.sort()).toEqual(['.env', 'docker-compose.yml', 'edited.conf', 'old.conf']);
    expect(restored.removed).toEqual(['nginx/extra.conf']);
    // nginx/ existed before; the directory itself is left in place.
    expect(await snapshot(install)).toEqual(original);
    expect(journal.record.phase).toBe('rolled-back');

    recorder.fail = {};
    await recorder.up({ dir: install, project: 'linda' });
    expect(recorder.calls.at(-1)!.files['docker-compose.yml']).toBe(compose('1'));
    await finishJournal(journal);
  });

  it('rolls back fully after a failure in the middle of the swap, in process and after a crash', async () => {
    for (const mode of ['exception', 'crash'] as const) {
      await rm(install, { recursive: true, force: true });
      await rm(state, { recursive: true, force: true });
      await mkdir(install);
      const previous = await hostOnV1();
      const original = await snapshot(install);
      const v2 = V2();
      const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
      // The second write into the install dir fails (disk full), after the first one landed.
      const failing = failAfterWrites(install, 1);
      const stagingDir = await stageApply(plan, stagingDirFor(install));
      const journal = await startApplyJournal(plan, { stateDir: state, targetCommit: 'c2', stagingDir });
      await expect(backupAndSwap(plan, journal, failing)).rejects.toThrow('ENOSPC');

      const midSwap = await snapshot(install);
      expect(midSwap['docker-compose.yml']).toBe(`file 644 ${compose('2')}`);
      expect(midSwap['nginx/extra.conf']).toBeUndefined();
      expect((await readJournal(state))!.record.phase).toBe('swapping');

      if (mode === 'exception') {
        await restoreBackup(journal);
        await finishJournal(journal);
      } else {
        const decision = await recoverFromJournal(state);
        expect(decision).toMatchObject({ action: 'rolled-back', interruptedAt: 'swapping', restartOldStack: false });
        if (decision.action === 'rolled-back') await finishJournal(decision.journal);
      }
      expect(await snapshot(install)).toEqual(original);
      expect(await readJournal(state)).toBeUndefined();
    }
  });

  it('never deletes a retired file that the host edited between plan and swap', async () => {
    const previous = await hostOnV1();
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree, previousManifest: previous });
    const stagingDir = await stageApply(plan, stagingDirFor(install));
    await writeFile(join(install, 'old.conf'), 'edited just now\n');
    const journal = await startApplyJournal(plan, { stateDir: state, targetCommit: 'c2', stagingDir });
    const swap = await backupAndSwap(plan, journal);
    expect(swap.kept).toEqual(['old.conf']);
    expect(await readFile(join(install, 'old.conf'), 'utf8')).toBe('edited just now\n');
    await finishJournal(journal);
  });

  it('refuses a staging dir inside the install dir', async () => {
    const v2 = V2();
    const plan = await planApply({ installDir: install, manifest: v2.manifest, files: v2.tree });
    await expect(stageApply(plan, join(install, 'staging'))).rejects.toThrow(UnsafePathError);
    await expect(stageApply(plan, root)).rejects.toThrow(UnsafePathError);
    expect(await readdir(install)).toEqual([]);
  });
});

describe('detectDrift', () => {
  it('reports managed files changed, missing, replaced by a symlink or with another mode; ignores the rest', async () => {
    const manifest = await hostOnV1();
    expect(await detectDrift(install, manifest)).toEqual([]);
    await writeFile(join(install, 'docker-compose.yml'), 'edited by hand\n');
    await rm(join(install, 'old.conf'));
    await rm(join(install, 'nginx/site.conf'));
    await symlink(join(outside, 'victim.conf'), join(install, 'nginx/site.conf'));
    await chmod(join(install, 'scripts/health.sh'), 0o600);
    await writeFile(join(install, 'host-notes.txt'), 'changed, but not managed\n');
    const drift = await detectDrift(install, manifest);
    expect(drift.map((d) => [d.path, d.state, d.detail])).toEqual([
      ['docker-compose.yml', 'modified', undefined],
      ['nginx/site.conf', 'unsafe', 'the file is a symlink'],
      ['old.conf', 'missing', undefined],
      ['scripts/health.sh', 'modified', 'mode 0600, expected 0755'],
    ]);
    expect(drift[0]!.actualSha256).toBe(sha256('edited by hand\n'));
  });
});

/** LocalFiles whose writes into `dir` fail with ENOSPC after `n` succeeded. */
function failAfterWrites(dir: string, n: number): LocalFiles {
  let writes = 0;
  return {
    ...localFiles,
    async writeManaged(rootDir, relPath, content, mode) {
      if (rootDir === dir && writes++ >= n) {
        throw Object.assign(new Error(`ENOSPC: no space left on device, write ${relPath}`), { code: 'ENOSPC' });
      }
      return localFiles.writeManaged(rootDir, relPath, content, mode);
    },
  };
}
