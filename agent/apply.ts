// The file side of an apply, as separate steps the reconcile loop calls in
// DESIGN.md's order: plan -> stage -> (compose config, pull) -> journal ->
// backup + swap -> env patch -> (compose up, verify) -> finish, or restore.
// Each step that changes the install dir records its progress in the journal
// itself, so a crash anywhere is recoverable (see journal.ts).
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { fileChange, type FileChange, type FileChangeOptions } from '../renderer/core/diff.js';
import { definedKeys, patchEnvText, type ComposeFlavour } from '../renderer/core/env-file.js';
import { stackMissingVariables } from './env-check.js';
import { ApplyRefusedError, EnvFileError, JournalError, ManifestError, UnsafePathError } from '../renderer/core/errors.js';
import { checkManagedPath, MAX_MANAGED_FILE_BYTES, sha256, type Manifest } from '../renderer/core/manifest.js';
import {
  createJournal,
  ENV_FILE,
  restoreFromJournal,
  setPhase,
  writeJournal,
  type Journal,
  type JournalFileEntry,
  type RestoreResult,
} from './journal.js';
import { localFiles, type LocalFile, type LocalFiles } from './local-files.js';
import type { HostDecisions } from './state.js';

/**
 * A managed path whose file on disk is neither what this release writes nor what
 * Flotilla last wrote there. Flotilla replaces it only after someone decided so.
 */
export interface ForeignFile {
  /** `unowned`: Flotilla never wrote this path on this host; `local-change`: edited on the host since Flotilla wrote it. */
  kind: 'unowned' | 'local-change';
  /** `undecided`: the apply is refused; `replace`: replaced, with a copy kept in the state dir; `keep`: left as it is. */
  decision: 'undecided' | 'replace' | 'keep';
  /** Who decided: the fleet (`adopt: replace`), the host (`flotilla-agent adopt` / `accept`), or FLOTILLA_DRIFT=heal. */
  by?: 'fleet' | 'host' | 'heal';
  /** Why an earlier decision no longer holds, e.g. an accepted change whose template changed since. */
  note?: string;
}

export interface PlannedFile extends FileChange {
  /** What the apply does with the file. */
  action: 'write' | 'delete' | 'none';
  /** The manifest's mode, and the mode on disk. */
  mode?: number;
  modeBefore?: number;
  sha256?: string;
  sha256Before?: string;
  /** Set when the file on disk is not what Flotilla last wrote there (see ForeignFile). */
  foreign?: ForeignFile;
}

/** A file that left the manifest but was changed on the host, so it stays. */
export interface KeptFile {
  path: string;
  reason: string;
}

export interface EnvPlan {
  existed: boolean;
  /** `.env` text before and after the patch; may hold host secrets, never print them. */
  before?: string;
  after?: string;
  /** The patch applied: the manifest's envPatch plus generated secrets (values secret). */
  patch: Record<string, string>;
  changed: string[];
  added: string[];
  /** Names of secrets generated for this apply (their values are in `patch` only). */
  generated: string[];
  /** The compose the patch was written for; patchInstalledEnv writes for the same one. */
  flavour?: ComposeFlavour;
}

export interface EnvCoverage {
  required: string[];
  /** Names compose would blank with a warning or stop on, given the patched `.env`: the apply is refused. */
  missing: string[];
}

export interface ApplyPlan {
  installDir: string;
  manifest: Manifest;
  /** Every managed file plus every file the apply deletes, sorted by path. */
  files: PlannedFile[];
  kept: KeptFile[];
  env: EnvPlan;
  coverage: EnvCoverage;
  /** New content of every managed file (the whole tree, for staging). */
  contents: Map<string, Buffer>;
}

export interface PlanApplyInput {
  installDir: string;
  manifest: Manifest;
  /** The tenant commit's tree: path -> content. Paths the manifest does not name are ignored. */
  files: Map<string, Buffer | string>;
  /** The manifest of the last applied commit: what Flotilla wrote before. */
  previousManifest?: Manifest;
  /** The host's `.env` text; when omitted it is read from the install dir. */
  envText?: string;
  /** Secret values generated for this apply (names from secretsToGenerate). */
  generatedSecrets?: Record<string, string>;
  diff?: FileChangeOptions;
  /** The environment compose runs with (composeEnv): it wins over `.env` when compose interpolates. */
  composeEnv?: Record<string, string | undefined>;
  /** Which compose reads `.env` on this host: values are written in the form it reads back. Default v2. */
  composeFlavour?: ComposeFlavour;
  /** The operator's decisions on this host (decisions.json). */
  decisions?: HostDecisions;
  /** FLOTILLA_DRIFT: with `heal` a local change is replaced (a copy kept); default `report`, which refuses. */
  drift?: 'report' | 'heal';
}

/** What planApply read from the install dir. */
export interface LocalState {
  files: Map<string, LocalFile | undefined>;
  /** Files that left the manifest and could not be read safely (e.g. now a symlink). */
  unreadable: Map<string, string>;
  envText?: string;
}

/** Checks the tenant tree against its manifest: safe paths, no duplicates, within the size limit, matching sha256. */
export function verifyTree(manifest: Manifest, files: Map<string, Buffer | string>): Map<string, Buffer> {
  const contents = new Map<string, Buffer>();
  const seen = new Set<string>();
  for (const file of manifest.files) {
    checkManagedPath(file.path);
    const folded = file.path.normalize('NFC');
    if (seen.has(folded)) throw new ManifestError('duplicate path', file.path);
    seen.add(folded);
    const raw = files.get(file.path);
    if (raw === undefined) throw new ManifestError('named in the manifest but missing from the commit', file.path);
    const content = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    if (content.length > MAX_MANAGED_FILE_BYTES)
      throw new ManifestError(`${content.length} bytes, over the ${MAX_MANAGED_FILE_BYTES}-byte limit`, file.path);
    const actual = sha256(content);
    if (actual !== file.sha256)
      throw new ManifestError(`sha256 ${actual} does not match the manifest's ${file.sha256}`, file.path);
    contents.set(file.path, content);
  }
  return contents;
}

/**
 * Managed secrets the host's `.env` does not define yet; the caller generates their values.
 * A key set centrally (the manifest's encryptedSecrets) is never generated: its decrypted value is used.
 */
export function secretsToGenerate(manifest: Manifest, envText: string | undefined): string[] {
  if (manifest.mode !== 'managed') return [];
  const defined = definedKeys(envText ?? '', ENV_FILE);
  const setCentrally = manifest.encryptedSecrets ?? {};
  return manifest.secrets.filter((name) => !defined.has(name) && !Object.hasOwn(setCentrally, name));
}

/** Reads everything planApply compares against; refuses (UnsafePathError) a managed path that is or goes through a symlink. */
export async function readLocalState(
  installDir: string,
  manifest: Manifest,
  previousManifest: Manifest | undefined,
  files: LocalFiles = localFiles,
): Promise<LocalState> {
  const state: LocalState = { files: new Map(), unreadable: new Map() };
  for (const file of manifest.files) state.files.set(file.path, await files.readManaged(installDir, file.path));
  const current = new Set(manifest.files.map((f) => f.path));
  for (const file of previousManifest?.files ?? []) {
    if (current.has(file.path)) continue;
    try {
      checkManagedPath(file.path);
      state.files.set(file.path, await files.readManaged(installDir, file.path));
    } catch (e) {
      if (!(e instanceof UnsafePathError || e instanceof ManifestError)) throw e;
      state.unreadable.set(file.path, e.message);
    }
  }
  const env = await files.readManaged(installDir, ENV_FILE);
  if (env) state.envText = decodeEnv(env.content);
  return state;
}

/**
 * Pure: what an apply of `input.manifest` would do, given the local state.
 * Throws ManifestError for a tree that does not match its manifest and
 * EnvFileError for an env patch that cannot be written.
 */
export function buildApplyPlan(input: PlanApplyInput, local: LocalState): ApplyPlan {
  const contents = verifyTree(input.manifest, input.files);
  const written = new Map((input.previousManifest?.files ?? []).map((f) => [f.path, f.sha256]));
  const planned: PlannedFile[] = [];
  for (const file of input.manifest.files) {
    const next = contents.get(file.path)!;
    const onDisk = local.files.get(file.path);
    const change = fileChange(file.path, onDisk?.content.toString('utf8'), next.toString('utf8'), input.diff)!;
    const entry: PlannedFile = { ...change, action: 'write', mode: file.mode, sha256: file.sha256 };
    if (onDisk) {
      entry.modeBefore = onDisk.mode;
      entry.sha256Before = sha256(onDisk.content);
      // Byte-equal decoded text can hide different bytes (invalid UTF-8); compare hashes.
      if (entry.sha256Before === file.sha256) {
        entry.status = onDisk.mode === file.mode ? 'unchanged' : 'modified';
        delete entry.diff;
        delete entry.truncated;
      } else {
        entry.status = 'modified';
      }
      if (entry.status === 'unchanged') entry.action = 'none';
      // What this release writes, or what Flotilla wrote last, is Flotilla's; anything else is not.
      else if (entry.sha256Before !== file.sha256 && entry.sha256Before !== written.get(file.path)) {
        entry.foreign = decideForeign(input, file.path, written.has(file.path) ? 'local-change' : 'unowned', entry.sha256Before, file.sha256);
        if (entry.foreign.decision === 'keep') {
          // The stack is staged and brought up with the file the host keeps.
          entry.action = 'none';
          entry.mode = onDisk.mode;
          contents.set(file.path, onDisk.content);
        }
      }
    }
    planned.push(entry);
  }

  const kept: KeptFile[] = [];
  const current = new Set(input.manifest.files.map((f) => f.path));
  for (const file of input.previousManifest?.files ?? []) {
    if (current.has(file.path)) continue;
    const problem = local.unreadable.get(file.path);
    if (problem) {
      kept.push({ path: file.path, reason: `left the manifest but is not safe to touch: ${problem}` });
      continue;
    }
    const onDisk = local.files.get(file.path);
    if (!onDisk) continue;
    if (sha256(onDisk.content) !== file.sha256) {
      kept.push({ path: file.path, reason: 'left the manifest but was changed on this host since Flotilla wrote it' });
      continue;
    }
    const change = fileChange(file.path, onDisk.content.toString('utf8'), undefined, input.diff)!;
    planned.push({ ...change, action: 'delete', modeBefore: onDisk.mode, sha256Before: file.sha256 });
  }
  planned.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const envBefore = input.envText ?? local.envText;
  const generated = Object.keys(input.generatedSecrets ?? {});
  const patch = { ...input.manifest.envPatch, ...input.generatedSecrets };
  const patched = patchEnvText(envBefore ?? '', patch, ENV_FILE, input.composeFlavour);
  const env: EnvPlan = {
    existed: envBefore !== undefined,
    patch,
    changed: patched.changed,
    added: patched.added,
    generated,
    ...(input.composeFlavour ? { flavour: input.composeFlavour } : {}),
  };
  if (envBefore !== undefined) env.before = envBefore;
  if (envBefore !== undefined || patched.text !== '') env.after = patched.text;

  const required = [...new Set(input.manifest.requiredVariables)].sort();
  // What compose itself would blank or stop on with these values; a tree without a
  // compose file compose picks falls back to the manifest's names.
  const evaluated = stackMissingVariables(contents, env.after ?? '', input.composeEnv ?? {}, input.composeFlavour);
  const defined = definedKeys(env.after ?? '', ENV_FILE);
  const coverage = { required, missing: evaluated ?? required.filter((name) => !defined.has(name)) };

  return { installDir: input.installDir, manifest: input.manifest, files: planned, kept, env, coverage, contents };
}

/**
 * Who, if anyone, decided what happens to a managed file Flotilla did not write (or
 * that changed since it did). An acceptance on the host keeps the file, and holds
 * only for the content and the template it was given for; then the host's adoption,
 * bound to the file's hash; then the fleet's `adopt: replace` (only for paths Flotilla
 * never wrote here) or FLOTILLA_DRIFT=heal (only for local changes).
 */
function decideForeign(
  input: PlanApplyInput,
  path: string,
  kind: ForeignFile['kind'],
  onDisk: string,
  target: string,
): ForeignFile {
  const accepted = input.decisions?.accepted?.[path];
  if (accepted?.sha256 === onDisk && accepted.template === target) return { kind, decision: 'keep', by: 'host' };
  if (input.decisions?.adoption?.files[path] === onDisk) return { kind, decision: 'replace', by: 'host' };
  if (accepted?.sha256 === onDisk) {
    // An acceptance is the operator's word on this file: the fleet's adopt or heal does not overrule it.
    return { kind, decision: 'undecided', note: 'accepted on this host, but this release changes the template for it: decide again' };
  }
  if (kind === 'unowned' && input.manifest.adopt === 'replace') return { kind, decision: 'replace', by: 'fleet' };
  if (kind === 'local-change' && input.drift === 'heal') return { kind, decision: 'replace', by: 'heal' };
  return { kind, decision: 'undecided' };
}

/** Files the plan would replace without anyone's decision: the apply is refused while there are any. */
export function undecidedFiles(plan: ApplyPlan): PlannedFile[] {
  return plan.files.filter((f) => f.foreign?.decision === 'undecided');
}

/** Files an apply replaces that were not Flotilla's: a copy of each is kept (see replaced.ts). */
export function foreignReplaced(plan: ApplyPlan): PlannedFile[] {
  return plan.files.filter((f) => f.foreign?.decision === 'replace' && f.action === 'write');
}

/** Local changes the apply leaves in place because the operator accepted them. */
export function foreignKept(plan: ApplyPlan): PlannedFile[] {
  return plan.files.filter((f) => f.foreign?.decision === 'keep');
}

/** 5,296 -> 15,695 B: sizes as the refusal and the plan print them. */
export function sizeChange(file: Pick<PlannedFile, 'sizeBefore' | 'sizeAfter'>): string {
  const n = (v: number | undefined) => (v === undefined ? '-' : v.toLocaleString('en-US'));
  return `${n(file.sizeBefore)} -> ${n(file.sizeAfter)} B`;
}

/**
 * Refuses an apply that would replace files nobody decided about. The reason names
 * the files with their sizes, within GitHub's 140 characters for a status.
 */
export class ForeignFilesRefusedError extends ApplyRefusedError {
  constructor(readonly files: PlannedFile[]) {
    super(describeUndecided(files));
  }

  get paths(): string[] {
    return this.files.map((f) => f.path);
  }
}

const STATUS_BUDGET = 140 - 'refused: '.length;

export function describeUndecided(files: PlannedFile[]): string {
  // The biggest rewrites first: they are what could break a site, so they are named first.
  const bySize = (a: PlannedFile, b: PlannedFile) =>
    Math.abs((b.sizeAfter ?? 0) - (b.sizeBefore ?? 0)) - Math.abs((a.sizeAfter ?? 0) - (a.sizeBefore ?? 0));
  const unowned = files.filter((f) => f.foreign?.kind === 'unowned').sort(bySize);
  const changed = files.filter((f) => f.foreign?.kind !== 'unowned').sort(bySize);
  const tail = '; see `flotilla-agent plan`';
  const parts: { head: string; items: PlannedFile[]; sized: number; named: number }[] = [];
  if (unowned.length > 0)
    parts.push({ head: `would replace ${count(unowned.length, 'file')} it did not write: `, items: unowned, sized: unowned.length, named: unowned.length });
  if (changed.length > 0) parts.push({ head: `${count(changed.length, 'local change')} to managed files: `, items: changed, sized: 0, named: changed.length });
  const list = (p: (typeof parts)[number]) =>
    [
      ...p.items.slice(0, p.named).map((f, i) => (i < p.sized ? `${f.path} (${sizeChange(f)})` : f.path)),
      ...(p.named < p.items.length ? [`+${p.items.length - p.named} more`] : []),
    ].join(', ');
  const text = () => parts.map((p) => `${p.head}${list(p)}`).join('; ') + tail;
  // Within GitHub's limit: drop sizes from the end of each list, then names (the plan has
  // them all), the first file of each list keeping its name and size the longest.
  while (text().length > STATUS_BUDGET) {
    const cut =
      parts.find((p) => p.sized > 1) ??
      parts.filter((p) => p.named > 1).sort((a, b) => b.named - a.named)[0] ??
      parts.find((p) => p.sized > 0) ??
      parts.find((p) => p.named > 0);
    if (!cut) break;
    if (cut.sized > 1 || (cut.named <= 1 && cut.sized > 0)) cut.sized -= 1;
    else cut.named -= 1;
    cut.sized = Math.min(cut.sized, cut.named);
  }
  return text();
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** Reads the install dir and plans; writes nothing. */
export async function planApply(input: PlanApplyInput, files: LocalFiles = localFiles): Promise<ApplyPlan> {
  // Check the commit before touching the disk at all, so a bad tree fails the same way everywhere.
  verifyTree(input.manifest, input.files);
  const local = await readLocalState(input.installDir, input.manifest, input.previousManifest, files);
  return buildApplyPlan(input, local);
}

/** True when applying the plan changes a file or `.env`. */
export function planChangesSomething(plan: ApplyPlan): boolean {
  return (
    plan.files.some((f) => f.action !== 'none') || plan.env.changed.length > 0 || plan.env.added.length > 0
  );
}

/** Where the staged tree goes by default: a hidden sibling of the install dir (same file system, same parent). */
export function stagingDirFor(installDir: string): string {
  const dir = resolve(installDir);
  return join(dirname(dir), `.${basename(dir)}.flotilla-staging`);
}

/**
 * Writes the complete new tree (every managed file, and `.env` with the patch
 * applied) into a fresh staging dir, so `compose config` and `compose pull` run
 * on exactly what `up` will see. The install dir is not touched.
 */
export async function stageApply(plan: ApplyPlan, stagingDir: string, files: LocalFiles = localFiles): Promise<string> {
  const staging = resolve(stagingDir);
  const install = resolve(plan.installDir);
  if (isInside(staging, install) || isInside(install, staging))
    throw new UnsafePathError(stagingDir, `staging dir must lie outside the install dir ${install} and not contain it`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o755 });
  for (const file of plan.files) {
    if (file.action === 'delete') continue;
    // plan.contents holds a kept local change's own bytes, and file.mode its own mode.
    await files.writeManaged(staging, file.path, plan.contents.get(file.path)!, file.mode!);
  }
  if (plan.env.after !== undefined) await files.writeManaged(staging, ENV_FILE, plan.env.after, 0o600);
  return staging;
}

/** Opens the journal for this plan at phase `staged`, listing every file the apply will write or delete. */
export async function startApplyJournal(
  plan: ApplyPlan,
  where: { stateDir: string; targetCommit: string; fromCommit?: string; stagingDir?: string },
): Promise<Journal> {
  const entries: JournalFileEntry[] = [];
  for (const file of plan.files) {
    if (file.action === 'write')
      entries.push({ path: file.path, action: file.status === 'created' ? 'create' : 'replace', sha256: file.sha256!, mode: file.mode! });
    else if (file.action === 'delete')
      // previousSha256 holds the hash Flotilla wrote; the file is deleted only if it still has it.
      entries.push({ path: file.path, action: 'delete', previousSha256: file.sha256Before! });
  }
  const init: Parameters<typeof createJournal>[1] = {
    installDir: resolve(plan.installDir),
    targetCommit: where.targetCommit,
    files: entries,
  };
  if (where.fromCommit !== undefined) init.fromCommit = where.fromCommit;
  if (where.stagingDir !== undefined) init.stagingDir = resolve(where.stagingDir);
  return createJournal(where.stateDir, init);
}

export interface SwapResult {
  written: string[];
  deleted: string[];
  /** Files planned for deletion that changed on the host meanwhile: left in place. */
  kept: string[];
}

/**
 * Backs up every file the apply replaces or deletes (phase `backed-up`), then
 * replaces each file atomically and removes the deleted ones (`swapping`, then
 * `swapped`). What is on disk now decides create vs replace, not the plan, so
 * a file the host created since planning is backed up too.
 */
export async function backupAndSwap(plan: ApplyPlan, journal: Journal, files: LocalFiles = localFiles): Promise<SwapResult> {
  const record = journal.record;
  if (record.phase !== 'staged')
    throw new JournalError(record.installDir, `backupAndSwap needs phase staged, journal is at ${record.phase}`);
  const result: SwapResult = { written: [], deleted: [], kept: [] };
  const entries: JournalFileEntry[] = [];
  for (const entry of record.files) {
    const current = await files.readManaged(record.installDir, entry.path);
    if (entry.action === 'delete') {
      if (!current) continue;
      if (sha256(current.content) !== entry.previousSha256) {
        result.kept.push(entry.path);
        continue;
      }
    } else {
      entry.action = current ? 'replace' : 'create';
    }
    if (current) {
      const backup = `files/${entry.path}`;
      await files.writeManaged(record.backupDir, backup, current.content, 0o600);
      entry.backup = backup;
      entry.previousSha256 = sha256(current.content);
      entry.previousMode = current.mode;
    }
    entries.push(entry);
  }
  record.files = entries;
  await setPhase(journal, 'backed-up');

  await setPhase(journal, 'swapping');
  for (const entry of record.files) {
    if (entry.action === 'delete') {
      await files.removeManaged(record.installDir, entry.path);
      result.deleted.push(entry.path);
    } else {
      const content = plan.contents.get(entry.path);
      if (!content) throw new JournalError(record.installDir, `no content planned for ${entry.path}`);
      await files.writeManaged(record.installDir, entry.path, content, entry.mode!);
      result.written.push(entry.path);
    }
  }
  await setPhase(journal, 'swapped');
  return result;
}

/**
 * Patches the installed `.env` (phase `env-patched`). It re-reads the file and
 * applies the plan's patch to what is there now, so a line an operator edited
 * since planning is kept; the old file is backed up and journaled first.
 */
export async function patchInstalledEnv(
  plan: ApplyPlan,
  journal: Journal,
  files: LocalFiles = localFiles,
): Promise<{ changed: string[]; added: string[] }> {
  const record = journal.record;
  if (record.phase !== 'swapped')
    throw new JournalError(record.installDir, `patchInstalledEnv needs phase swapped, journal is at ${record.phase}`);
  const current = await files.readManaged(record.installDir, ENV_FILE);
  const text = current ? decodeEnv(current.content) : '';
  const patched = patchEnvText(text, plan.env.patch, ENV_FILE, plan.env.flavour);
  const unchanged = current ? patched.text === text : patched.text === '';
  if (!unchanged) {
    if (current) {
      await files.writeManaged(record.backupDir, 'env', current.content, 0o600);
      record.env = {
        existed: true,
        backup: 'env',
        previousSha256: sha256(current.content),
        previousMode: current.mode,
        sha256: sha256(patched.text),
      };
    } else {
      record.env = { existed: false, sha256: sha256(patched.text) };
    }
    await writeJournal(journal);
    await files.writeManaged(record.installDir, ENV_FILE, patched.text, current?.mode ?? 0o600);
  }
  await setPhase(journal, 'env-patched');
  return unchanged ? { changed: [], added: [] } : { changed: patched.changed, added: patched.added };
}

/** Puts the install dir and `.env` back on the old commit (see restoreFromJournal). */
export async function restoreBackup(journal: Journal, files: LocalFiles = localFiles): Promise<RestoreResult> {
  return restoreFromJournal(journal, files);
}

export interface DriftedFile {
  path: string;
  expectedSha256: string;
  /** `modified`: other bytes or mode; `missing`: gone; `unsafe`: replaced by a symlink or a non-file. */
  state: 'modified' | 'missing' | 'unsafe';
  actualSha256?: string;
  detail?: string;
}

/** Managed files whose bytes (or mode) on disk differ from what the manifest says Flotilla wrote. */
export async function detectDrift(
  installDir: string,
  manifest: Manifest,
  files: LocalFiles = localFiles,
): Promise<DriftedFile[]> {
  const drift: DriftedFile[] = [];
  for (const file of manifest.files) {
    let onDisk: LocalFile | undefined;
    try {
      onDisk = await files.readManaged(installDir, file.path);
    } catch (e) {
      if (!(e instanceof UnsafePathError)) throw e;
      drift.push({ path: file.path, expectedSha256: file.sha256, state: 'unsafe', detail: e.detail });
      continue;
    }
    if (!onDisk) {
      drift.push({ path: file.path, expectedSha256: file.sha256, state: 'missing' });
      continue;
    }
    const actual = sha256(onDisk.content);
    if (actual !== file.sha256) drift.push({ path: file.path, expectedSha256: file.sha256, state: 'modified', actualSha256: actual });
    else if (onDisk.mode !== file.mode)
      drift.push({
        path: file.path,
        expectedSha256: file.sha256,
        state: 'modified',
        actualSha256: actual,
        detail: `mode ${octal(onDisk.mode)}, expected ${octal(file.mode)}`,
      });
  }
  return drift;
}

function decodeEnv(bytes: Buffer): string {
  try {
    // ignoreBOM keeps a BOM in the text, so patching writes it back.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new EnvFileError(ENV_FILE, 'is not valid UTF-8; refusing to rewrite it');
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function octal(mode: number): string {
  return `0${mode.toString(8)}`;
}
