// Per-file changes between two trees, with unified diffs. The same function backs
// the agent's `plan` (install dir vs tenant commit) and the renderer's PR comment
// (base render vs head render), so both show a change the same way.
import { createTwoFilesPatch } from 'diff';
import { byCodeUnits } from './manifest.js';

export type FileChangeStatus = 'unchanged' | 'modified' | 'created' | 'deleted';

export interface FileChange {
  path: string;
  status: FileChangeStatus;
  /** Bytes (UTF-8) before; absent for a created file. */
  sizeBefore?: number;
  /** Bytes (UTF-8) after; absent for a deleted file. */
  sizeAfter?: number;
  /** Unified diff (`--- a/path` / `+++ b/path`); absent for unchanged files. */
  diff?: string;
  /** The diff was cut at `maxDiffChars`, or not computed because the change is too large to diff. */
  truncated?: boolean;
}

export interface FileChangeOptions {
  /** Lines of context around each hunk (default 3). */
  context?: number;
  /** Longest diff kept per file, in characters (default 20,000); longer ones are cut at a line end. */
  maxDiffChars?: number;
}

export const DEFAULT_MAX_DIFF_CHARS = 20_000;

/**
 * Bounds the diff algorithm's work (Myers is O(N·D), and D² in practice): a
 * modification with more edited lines than this is shown as sizes only, so a regenerated 4 MB file cannot
 * stall a plan or a PR preview.
 */
const MAX_EDIT_LENGTH = 1_000;

/**
 * Compares two trees given as path -> content (undefined = absent). A path absent
 * from both is not listed. Result is sorted by path (code-unit order, like git).
 */
export function fileChanges(
  before: Map<string, string | undefined>,
  after: Map<string, string | undefined>,
  opts: FileChangeOptions = {},
): FileChange[] {
  const paths = new Set<string>([...before.keys(), ...after.keys()]);
  const changes: FileChange[] = [];
  for (const path of [...paths].sort(byCodeUnits)) {
    const change = fileChange(path, before.get(path), after.get(path), opts);
    if (change) changes.push(change);
  }
  return changes;
}

/** One file's change; undefined when the file is absent on both sides. */
export function fileChange(
  path: string,
  before: string | undefined,
  after: string | undefined,
  opts: FileChangeOptions = {},
): FileChange | undefined {
  if (before === undefined && after === undefined) return undefined;
  const sizeBefore = before === undefined ? undefined : Buffer.byteLength(before, 'utf8');
  const sizeAfter = after === undefined ? undefined : Buffer.byteLength(after, 'utf8');
  const status: FileChangeStatus =
    before === undefined ? 'created' : after === undefined ? 'deleted' : before === after ? 'unchanged' : 'modified';
  const change: FileChange = { path, status };
  if (sizeBefore !== undefined) change.sizeBefore = sizeBefore;
  if (sizeAfter !== undefined) change.sizeAfter = sizeAfter;
  if (status === 'unchanged') return change;

  const oldName = before === undefined ? '/dev/null' : `a/${path}`;
  const newName = after === undefined ? '/dev/null' : `b/${path}`;
  const context = opts.context ?? 3;
  // A created or deleted file diffs in linear time; only a modification needs the bound.
  const patch: string | undefined =
    status === 'modified'
      ? createTwoFilesPatch(oldName, newName, before!, after!, undefined, undefined, {
          context,
          maxEditLength: MAX_EDIT_LENGTH,
          headerOptions: FILE_HEADERS,
        })
      : createTwoFilesPatch(oldName, newName, before ?? '', after ?? '', undefined, undefined, {
          context,
          headerOptions: FILE_HEADERS,
        });
  if (patch === undefined) {
    change.truncated = true;
    return change;
  }
  const max = opts.maxDiffChars ?? DEFAULT_MAX_DIFF_CHARS;
  if (patch.length > max) {
    const cut = patch.lastIndexOf('\n', max - 1);
    change.diff = patch.slice(0, cut > 0 ? cut + 1 : max);
    change.truncated = true;
  } else {
    change.diff = patch;
  }
  return change;
}

// `---`/`+++` lines without the `Index:` and `====` lines: what git and GitHub show.
const FILE_HEADERS = { includeIndex: false, includeUnderline: false, includeFileHeaders: true };
