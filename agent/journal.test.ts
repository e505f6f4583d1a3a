import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JournalError } from '../renderer/core/errors.js';
import { sha256, type Manifest } from '../renderer/core/manifest.js';
import { RecordingCompose } from '../test/support/recording-compose.js';
import {
  backupAndSwap,
  patchInstalledEnv,
  planApply,
  restoreBackup,
  stageApply,
  startApplyJournal,
  stagingDirFor,
  type ApplyPlan,
} from './apply.js';
import {
  createJournal,
  decideRecovery,
  finishJournal,
  journalPath,
  readJournal,
  recoverFromJournal,
  setPhase,
  writeJournal,
  type ApplyPhase,
  type Journal,
  type JournalRecord,
} from './journal.js';
import { localFiles, type LocalFiles } from './local-files.js';
import { AGENT_RUN_VARIABLE, agentRunId } from './exec.js';

/** path -> "mode content" for every file under dir (directories are not compared: they are never removed). */
async function files(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string) {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      if (st.isDirectory()) await walk(path);
      else out[path] = `${(st.mode & 0o777).toString(8)} ${await readFile(join(dir, path), 'utf8')}`;
    }
  }
  await walk('');
  return out;
}

function release(spec: Record<string, string>, tag: string): { manifest: Manifest; tree: Map<string, string> } {
  const tree = new Map(Object.entries(spec));
  return {
    tree,
    manifest: {
      schemaVersion: 1,
      tenant: 'linda',
      mode: 'adopted',
      imageTag: tag,
      source: { repo: 'r', commit: tag.padEnd(40, '0') },
      files: [...tree].map(([path, c]) => ({ path, sha256: sha256(c), mode: 0o644 })).sort((a, b) => (a.path < b.path ? -1 : 1)),
      envPatch: { IMAGE_TAG: tag },
      requiredVariables: ['IMAGE_TAG'],
      secrets: [],
    },
  };
}

const V1 = release({ 'docker-compose.yml': 'image: app:v1\n', 'a.conf': 'a1\n', 'retired.conf': 'bye\n' }, 'v1');
const V2 = release({ 'docker-compose.yml': 'image: app:v2\n', 'a.conf': 'a2\n', 'b/new.conf': 'new\n' }, 'v2');

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'flotilla-journal-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh host on v1 with a file of its own; returns its dirs. */
async function host(name: string) {
  const install = join(root, name, 'stack');
  const state = join(root, name, 'state');
  await mkdir(install, { recursive: true });
  for (const [path, content] of V1.tree) await localFiles.writeManaged(install, path, content, 0o644);
  await writeFile(join(install, '.env'), 'SECRET=host-only\nIMAGE_TAG=v1\n', { mode: 0o600 });
  await writeFile(join(install, 'notes.txt'), 'host file\n');
  const plan = await planApply({ installDir: install, manifest: V2.manifest, files: V2.tree, previousManifest: V1.manifest });
  return { install, state, plan };
}

/** Writes into `dir` (or removals from it) fail after `n` succeeded, like a full disk or a kill. */
function failAfter(dir: string, n: number, op: 'writeManaged' | 'removeManaged' = 'writeManaged'): LocalFiles {
  let count = 0;
  const fail = (relPath: string) => {
    if (count++ >= n) throw Object.assign(new Error(`EIO: simulated crash at ${relPath}`), { code: 'EIO' });
  };
  return {
    ...localFiles,
    async writeManaged(rootDir, relPath, content, mode) {
      if (op === 'writeManaged' && rootDir === dir) fail(relPath);
      return localFiles.writeManaged(rootDir, relPath, content, mode);
    },
    async removeManaged(rootDir, relPath) {
      if (op === 'removeManaged' && rootDir === dir) fail(relPath);
      return localFiles.removeManaged(rootDir, relPath);
    },
  };
}

type Step = (h: { install: string; state: string; plan: ApplyPlan }) => Promise<void>;

async function staged(h: { install: string; state: string; plan: ApplyPlan }): Promise<Journal> {
  const stagingDir = await stageApply(h.plan, stagingDirFor(h.install));
  return startApplyJournal(h.plan, { stateDir: h.state, targetCommit: 'c2', fromCommit: 'c1', stagingDir });
}

async function swapped(h: { install: string; state: string; plan: ApplyPlan }): Promise<Journal> {
  const journal = await staged(h);
  await backupAndSwap(h.plan, journal);
  return journal;
}

const ignore = () => undefined;

/** Each entry stops an apply at one point, the way `kill -9` would leave it on disk. */
const crashPoints: [string, 'old' | 'new', Step][] = [
  ['after stage', 'old', async (h) => void (await staged(h))],
  [
    'after backup, before the first swap',
    'old',
    async (h) => {
      const journal = await staged(h);
      await backupAndSwap(h.plan, journal, failAfter(h.install, 0)).catch(ignore);
      journal.record.phase = 'backed-up';
      await writeJournal(journal);
    },
  ],
  [
    'mid-swap, one file swapped, killed inside the next atomic write',
    'old',
    async (h) => {
      await backupAndSwap(h.plan, await staged(h), failAfter(h.install, 1)).catch(ignore);
      // writeFileAtomic's temp file for the second file, left by kill -9 before its rename.
      await writeFile(join(h.install, `.docker-compose.yml.${process.pid}.0123456789ab.tmp`), 'image: app:v');
    },
  ],
  ['mid-swap, all written, delete pending', 'old', async (h) => void (await backupAndSwap(h.plan, await staged(h), failAfter(h.install, 0, 'removeManaged')).catch(ignore))],
  ['after swap', 'old', async (h) => void (await swapped(h))],
  [
    'after .env was written, before env-patched was recorded',
    'old',
    async (h) => {
      const journal = await swapped(h);
      await patchInstalledEnv(h.plan, journal);
      journal.record.phase = 'swapped';
      await writeJournal(journal);
    },
  ],
  ['after env patch', 'new', async (h) => void (await patchInstalledEnv(h.plan, await swapped(h)))],
  [
    'after up',
    'new',
    async (h) => {
      const journal = await swapped(h);
      await patchInstalledEnv(h.plan, journal);
      await setPhase(journal, 'up');
    },
  ],
  [
    'after verify, before state was recorded',
    'new',
    async (h) => {
      const journal = await swapped(h);
      await patchInstalledEnv(h.plan, journal);
      await setPhase(journal, 'up');
      await setPhase(journal, 'verified');
    },
  ],
  [
    'mid-rollback after a failed up',
    'old',
    async (h) => {
      const journal = await swapped(h);
      await patchInstalledEnv(h.plan, journal);
      await restoreBackup(journal, failAfter(h.install, 1)).catch(ignore);
    },
  ],
  [
    'after rollback, before the old stack was up',
    'old',
    async (h) => {
      const journal = await swapped(h);
      await patchInstalledEnv(h.plan, journal);
      await restoreBackup(journal);
    },
  ],
];

describe('recovery from a crash at every step', () => {
  it.each(crashPoints)('%s: the host ends fully on the %s commit with the stack up', async (_name, expected, crash) => {
    // Reference trees: a host never touched, and a host after a clean apply.
    const reference = await host('reference');
    const oldTree = await files(reference.install);
    const clean = await swapped(reference);
    await patchInstalledEnv(reference.plan, clean);
    await finishJournal(clean);
    const newTree = await files(reference.install);
    expect(newTree).not.toEqual(oldTree);

    const h = await host('crashed');
    await crash(h);
    const compose = new RecordingCompose();
    const target = { dir: h.install, project: 'linda' };

    // What the agent does on start, before anything else.
    const decision = await recoverFromJournal(h.state);
    if (decision.action === 'rolled-back') {
      await compose.up(target);
      await finishJournal(decision.journal);
    } else if (decision.action === 'roll-forward') {
      await compose.up(target);
      await setPhase(decision.journal, 'verified');
      await finishJournal(decision.journal);
    } else if (decision.action === 'finish') {
      await finishJournal(decision.journal);
    }

    expect(decision.action).toBe(expected === 'old' ? 'rolled-back' : decision.action === 'finish' ? 'finish' : 'roll-forward');
    expect(await files(h.install)).toEqual(expected === 'old' ? oldTree : newTree);
    if (decision.action !== 'finish') expect(compose.calls.at(-1)!.files['docker-compose.yml']).toBe(expected === 'old' ? 'image: app:v1\n' : 'image: app:v2\n');
    expect(await readJournal(h.state)).toBeUndefined();
    // No journal, no backups, nothing left in the state dir.
    expect(await readdir(h.state)).toEqual([]);
  });

  it('says the old stack must be restarted only when compose may have run on the new files', async () => {
    const h = await host('h');
    await backupAndSwap(h.plan, await staged(h), failAfter(h.install, 1)).catch(ignore);
    expect(await recoverFromJournal(h.state)).toMatchObject({ action: 'rolled-back', restartOldStack: false, interruptedAt: 'swapping' });

    const h2 = await host('h2');
    const journal = await swapped(h2);
    await patchInstalledEnv(h2.plan, journal);
    await setPhase(journal, 'up');
    await restoreBackup(journal, failAfter(h2.install, 0)).catch(ignore);
    const decision = await recoverFromJournal(h2.state);
    expect(decision).toMatchObject({ action: 'rolled-back', restartOldStack: true, interruptedAt: 'rolling-back' });
  });

  it('rolls back when rolling forward fails: up fails after recovery, backup restored', async () => {
    const h = await host('h');
    const oldTree = await files(h.install);
    await patchInstalledEnv(h.plan, await swapped(h));
    const decision = await recoverFromJournal(h.state);
    expect(decision.action).toBe('roll-forward');
    if (decision.action !== 'roll-forward') return;
    const compose = new RecordingCompose({ fail: { up: 'app exited with code 1' } });
    await expect(compose.up({ dir: h.install, project: 'linda' })).rejects.toThrow('up failed: app exited with code 1');
    const restored = await restoreBackup(decision.journal);
    expect(restored.removed).toEqual(['b/new.conf']);
    expect(await files(h.install)).toEqual(oldTree);
    await finishJournal(decision.journal);
  });

  it('removes a .env the apply created when it rolls back (a host that had none)', async () => {
    const h = await host('h');
    await rm(join(h.install, '.env'));
    const oldTree = await files(h.install);
    const plan = await planApply({ installDir: h.install, manifest: V2.manifest, files: V2.tree, previousManifest: V1.manifest });
    const journal = await swapped({ ...h, plan });
    await patchInstalledEnv(plan, journal);
    expect(await readFile(join(h.install, '.env'), 'utf8')).toBe('# Added by fleet env-patch\nIMAGE_TAG=v2\n');
    expect(((await lstat(join(h.install, '.env'))).mode & 0o777).toString(8)).toBe('600');
    const restore = await restoreBackup(journal);
    expect(restore.removed).toEqual(['b/new.conf', '.env']);
    expect(await files(h.install)).toEqual(oldTree);
  });

  it('keeps a file the apply created if the host changed it before the rollback', async () => {
    const h = await host('h');
    await swapped(h);
    await writeFile(join(h.install, 'b/new.conf'), 'operator edit\n');
    const decision = await recoverFromJournal(h.state);
    expect(decision).toMatchObject({ action: 'rolled-back', restore: { kept: ['b/new.conf'] } });
    expect(await readFile(join(h.install, 'b/new.conf'), 'utf8')).toBe('operator edit\n');
  });
});

describe('the journal file', () => {
  it('decides by phase: roll back until .env is patched, then roll forward, finish once verified', () => {
    const decisions = (['staged', 'backed-up', 'swapping', 'swapped', 'env-patched', 'up', 'verified', 'rolling-back', 'rolled-back'] as ApplyPhase[]).map(
      (phase) => [phase, decideRecovery({ phase } as JournalRecord)],
    );
    expect(decisions).toEqual([
      ['staged', 'roll-back'],
      ['backed-up', 'roll-back'],
      ['swapping', 'roll-back'],
      ['swapped', 'roll-back'],
      ['env-patched', 'roll-forward'],
      ['up', 'roll-forward'],
      ['verified', 'finish'],
      ['rolling-back', 'roll-back'],
      ['rolled-back', 'roll-back'],
    ]);
  });

  it('records each phase on disk, with backups and the .env backup', async () => {
    const h = await host('h');
    const journal = await staged(h);
    expect(JSON.parse(await readFile(journalPath(h.state), 'utf8'))).toMatchObject({
      phase: 'staged',
      targetCommit: 'c2',
      fromCommit: 'c1',
      files: [
        { path: 'a.conf', action: 'replace' },
        { path: 'b/new.conf', action: 'create' },
        { path: 'docker-compose.yml', action: 'replace' },
        { path: 'retired.conf', action: 'delete' },
      ],
    });
    await backupAndSwap(h.plan, journal);
    await patchInstalledEnv(h.plan, journal);
    const record = (await readJournal(h.state))!.record;
    expect(record.phase).toBe('env-patched');
    expect(record.files.find((f) => f.path === 'a.conf')).toMatchObject({ backup: 'files/a.conf', previousSha256: sha256('a1\n'), previousMode: 0o644 });
    expect(await readFile(join(record.backupDir, 'files/retired.conf'), 'utf8')).toBe('bye\n');
    expect(record.env).toMatchObject({ existed: true, backup: 'env', previousMode: 0o600 });
    expect(await readFile(join(record.backupDir, 'env'), 'utf8')).toBe('SECRET=host-only\nIMAGE_TAG=v1\n');
    expect(((await lstat(journalPath(h.state))).mode & 0o777).toString(8)).toBe('600');
    expect(await readFile(journalPath(h.state), 'utf8')).not.toContain('host-only');
  });

  it('refuses to start a second apply over an unfinished one', async () => {
    const h = await host('h');
    await staged(h);
    await expect(staged(h)).rejects.toThrow(/unfinished apply of c2 must be recovered first/);
  });

  it('reports a corrupt journal instead of guessing', async () => {
    const state = join(root, 'state');
    await mkdir(state);
    await writeFile(journalPath(state), '{"version":1,"phase":"half-way"');
    await expect(readJournal(state)).rejects.toThrow(JournalError);
    await writeFile(journalPath(state), JSON.stringify({ version: 1, phase: 'sideways', installDir: '/x', backupDir: '/y', targetCommit: 'c', files: [] }));
    await expect(recoverFromJournal(state)).rejects.toThrow(/unknown phase "sideways"/);
  });

  it('refuses to restore from a backup that is missing', async () => {
    const h = await host('h');
    const journal = await swapped(h);
    await rm(join(journal.record.backupDir, 'files/a.conf'));
    await expect(recoverFromJournal(h.state)).rejects.toThrow(/backup of a\.conf \(files\/a\.conf\) is missing/);
  });

  it('starts clean: a journal created afresh clears a stale backup dir', async () => {
    const state = join(root, 'state');
    const first = await createJournal(state, { installDir: join(root, 'i'), targetCommit: 'c1', files: [] });
    await writeFile(join(first.record.backupDir, 'stale'), 'x');
    await rm(journalPath(state));
    const second = await createJournal(state, { installDir: join(root, 'i'), targetCommit: 'c2', files: [] });
    expect(await readdir(second.record.backupDir)).toEqual([]);
  });
});

describe('processes the interrupted agent left behind', () => {
  // The mark of an agent that was killed: its compose (here a shell standing in for it) lives on.
  const DEAD_RUN = '999999-0123456789abcdef';

  /** A journal at env-patched (compose may be running on the new files), written by the dead agent. */
  async function interrupted(): Promise<string> {
    const h = await host('killed');
    const journal = await swapped(h);
    await patchInstalledEnv(h.plan, journal);
    journal.record.agentRuns = [DEAD_RUN];
    await writeJournal(journal);
    return h.state;
  }

  function leftover(script: string): { pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
    const child = spawn('sh', ['-c', script], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [AGENT_RUN_VARIABLE]: DEAD_RUN }, stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    return { pid: child.pid!, exited };
  }

  it('waits for them to finish before it decides, and records its own mark for the next start', async () => {
    const state = await interrupted();
    const done = join(root, 'compose-finished');
    const compose = leftover(`sleep 1.5; echo up > ${done}`);
    const log: string[] = [];

    const decision = await recoverFromJournal(state, localFiles, { log: (l) => void log.push(l) });

    // The leftover ran to its end on its own, before recovery decided anything.
    expect(await readFile(done, 'utf8')).toBe('up\n');
    expect(await compose.exited).toEqual({ code: 0, signal: null });
    expect(decision.action).toBe('roll-forward');
    expect(log[0]).toMatch(new RegExp(`^recover: waiting for \\d process\\(es\\) of the interrupted run: ${compose.pid} \\(sh -c sleep 1.5`));
    expect((await readJournal(state))!.record.agentRuns).toEqual([DEAD_RUN, agentRunId()]);
  });

  it('stops them by PID when they outlive the wait, then decides', async () => {
    const state = await interrupted();
    const compose = leftover('sleep 30');
    const log: string[] = [];

    const decision = await recoverFromJournal(state, localFiles, { log: (l) => void log.push(l), leftoverWaitMs: 300 });

    expect(await compose.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(decision.action).toBe('roll-forward');
    expect(log.some((l) => l.startsWith(`recover: stopping with SIGTERM: ${compose.pid} (sh -c sleep 30)`))).toBe(true);
  });

  it('never waits for processes that carry another mark or none', async () => {
    const state = await interrupted();
    const other = spawn('sleep', ['30'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [AGENT_RUN_VARIABLE]: 'another-run' }, stdio: 'ignore' });
    try {
      const started = Date.now();
      const log: string[] = [];
      await recoverFromJournal(state, localFiles, { log: (l) => void log.push(l), leftoverWaitMs: 5_000 });
      expect(log).toEqual([]);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(other.exitCode).toBeNull();
    } finally {
      other.kill('SIGKILL');
    }
  });
});
