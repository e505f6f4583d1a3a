// `flotilla init DIR`: a new fleet repo from the package's scaffold/ folder (a small
// fleet, templates, workflows that run Flotilla through its action, a README stub, a
// .gitignore). Nothing is ever overwritten: a folder already holding any file the
// scaffold would write is refused, naming the files, before anything is written.
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlotillaError, SettingError } from '../core/errors.js';

/** The `uses:` reference the scaffold's workflows hold until the user (or `--action`) sets it. */
export const ACTION_PLACEHOLDER = 'OWNER/flotilla@v0';

/**
 * Files kept in scaffold/ under another name than the one written: npm never packs a
 * `.gitignore` (and would read it as ignore rules for the folder), so it ships without the dot.
 */
const RENAMED: Record<string, string> = { gitignore: '.gitignore' };

/** `owner/repo[/path]@ref`, or a full URL to one (Gitea and Forgejo name actions that way). */
const ACTION_REF = /^(?:https?:\/\/[^\s@/]+\/)?[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_./-]+)?@[A-Za-z0-9_./-]+$/;

/** `flotilla init` would write over what is already there: exit 3, as every "not yours" refusal. */
export class ScaffoldConflictError extends FlotillaError {
  readonly code = 'SCAFFOLD_CONFLICT';
  override readonly exitCode = 3;
  constructor(
    readonly dir: string,
    /** Paths relative to `dir` that already exist where the scaffold would write. */
    readonly existing: string[],
    /** Files appeared while writing: what was written before stays, nothing was overwritten. */
    readonly midway = false,
  ) {
    const shown = existing.slice(0, 8).join(', ') + (existing.length > 8 ? `, and ${existing.length - 8} more` : '');
    const written = midway ? 'it appeared while writing, and was left as it is' : 'nothing was written';
    super(`refusing to write ${dir}: it already holds ${shown}; ${written} (choose an empty or new folder, or move these away)`);
  }
}

export interface InitOptions {
  /** The action the workflows use instead of the placeholder, e.g. `my-org/flotilla@v0`. */
  action?: string;
  /** Where the scaffold is read from (tests); default: the package's own scaffold/. */
  scaffold?: string;
}

export interface InitResult {
  dir: string;
  /** Paths written, relative to `dir`, sorted. */
  files: string[];
  /** Whether the workflows still hold ACTION_PLACEHOLDER. */
  actionPlaceholder: boolean;
}

/**
 * The scaffold/ folder of the package this module belongs to: beside the nearest
 * package.json above it, which is the repository root when run from source (tsx) and
 * the installed package's folder when run from dist/.
 */
export function scaffoldRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const scaffold = join(dir, 'scaffold');
      if (!existsSync(join(scaffold, 'fleet', 'fleet.yaml'))) throw new Error(`no scaffold/ beside ${join(dir, 'package.json')}: the package is incomplete`);
      return scaffold;
    }
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}: cannot find the scaffold`);
  }
}

/** Every file under `dir`, as '/'-separated relative paths, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/** Where a scaffold file is written, relative to the new repo. */
function targetPath(source: string): string {
  const parts = source.split('/');
  const last = parts.pop()!;
  return [...parts, RENAMED[last] ?? last].join('/');
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw e;
  }
}

/**
 * What in `dir` is in the way: each target that exists (a file, folder or link), and each
 * folder on a target's path that exists as something other than a folder.
 */
async function conflicts(dir: string, targets: string[]): Promise<string[]> {
  const found = new Set<string>();
  for (const target of targets) {
    const parts = target.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      const info = await lstat(join(dir, folder)).catch(() => undefined);
      if (info && !info.isDirectory()) found.add(folder);
    }
    if (await exists(join(dir, target))) found.add(target);
  }
  return [...found].sort();
}

/** Writes the scaffold into `dir` (created when missing); refuses, writing nothing, when any target exists. */
export async function initFleetRepo(dir: string, options: InitOptions = {}): Promise<InitResult> {
  const action = options.action ?? ACTION_PLACEHOLDER;
  if (!ACTION_REF.test(action)) throw new SettingError('--action', `${JSON.stringify(action)} is not an action reference like my-org/flotilla@v0 or https://github.com/my-org/flotilla@v0`);
  const info = await lstat(dir).catch(() => undefined);
  if (info && !info.isDirectory()) throw new SettingError('DIR', `${dir} exists and is not a folder`);

  const scaffold = options.scaffold ?? scaffoldRoot();
  const sources = await filesUnder(scaffold);
  const targets = sources.map(targetPath);
  const inTheWay = await conflicts(dir, targets);
  if (inTheWay.length > 0) throw new ScaffoldConflictError(dir, inTheWay);

  try {
    await mkdir(dir, { recursive: true });
    for (const [i, source] of sources.entries()) {
      const target = join(dir, targets[i]!);
      let text = await readFile(join(scaffold, source), 'utf8');
      if (source.startsWith('.github/workflows/')) text = text.replaceAll(ACTION_PLACEHOLDER, action);
      await mkdir(dirname(target), { recursive: true });
      // `wx`: a file that appeared since the check is still never overwritten.
      await writeFile(target, text, { flag: 'wx' });
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new ScaffoldConflictError(dir, [relative(dir, (e as NodeJS.ErrnoException).path ?? dir)], true);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') throw new SettingError('DIR', `cannot write ${dir}: permission denied`, { cause: e });
    throw e;
  }
  return { dir, files: [...targets].sort(), actionPlaceholder: action === ACTION_PLACEHOLDER };
}
