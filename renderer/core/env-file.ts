// Reading and patching `.env` files the way Docker Compose reads them.
//
// Compose (v2, through compose-spec/compose-go's dotenv package) is the
// consumer of every `.env` Flotilla touches, so it is the reference here, not
// the `dotenv` npm package: the two disagree on exactly the values the patcher
// writes (`"a\"b"` is `a"b` to compose and `a\"b` to dotenv, `FOO=1#2` is
// `1#2` to compose and `1` to dotenv). The scanner below follows compose-go's
// parser statement by statement and additionally records where each value sits
// in the text, which is what lets the patcher change a value and nothing else.
// Variable expansion is deliberately not performed: values are reported as
// written, and `interpolated` says when compose would expand `$` in them.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { EnvFileError } from './errors.js';

/** The comment line above keys the patcher appends; written once per file, ever. */
export const ADDED_KEYS_MARKER = '# Added by fleet env-patch';

/** A name Flotilla may write: what compose interpolation can reference. */
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One `KEY=value` statement of an `.env` file. */
export interface EnvEntry {
  key: string;
  /** The value after quote removal and escape processing, before variable expansion. */
  value: string;
  /** True when compose expands `$` references in this value (unquoted or double-quoted with a `$`). */
  interpolated: boolean;
  /** How the value is written: `'`, `"` or `''` (bare). */
  quote: "'" | '"' | '';
  exported: boolean;
  /** 1-based line of the key, and of the value's last character (they differ for multi-line values). */
  line: number;
  endLine: number;
  /** Offsets into the text of the value as written, quotes included; empty span for an empty bare value. */
  valueStart: number;
  valueEnd: number;
}

export interface EnvFileView {
  file: string;
  /** Each key's value; the last occurrence wins, as in compose. */
  values: Map<string, string>;
  /** Every line (1-based) that assigns the key, in file order. */
  lines: Map<string, number[]>;
  /** Every assignment in file order, duplicates included. */
  entries: EnvEntry[];
  /** CRLF when the file's first line ends with CRLF. */
  lineEnding: '\n' | '\r\n';
  hasBom: boolean;
  /** True when a `# Added by fleet env-patch` comment line exists. */
  hasAddedKeysMarker: boolean;
}

/**
 * Parses `.env` text as compose does (compose-go's dotenv rules): `export `
 * prefixes, `KEY: value`, single and double quotes spanning lines, `" #"`
 * inline comments on bare values, a leading BOM. A bare `KEY` line (compose
 * takes it from the shell environment) defines nothing. Text compose would
 * reject is an EnvFileError naming the file and line.
 */
export function parseEnvText(text: string, file: string): EnvFileView {
  const scanned = scanEnvText(text, file);
  const values = new Map<string, string>();
  const lines = new Map<string, number[]>();
  for (const entry of scanned.entries) {
    values.set(entry.key, entry.value);
    const seen = lines.get(entry.key);
    if (seen) seen.push(entry.line);
    else lines.set(entry.key, [entry.line]);
  }
  const firstNewline = text.indexOf('\n');
  return {
    file,
    values,
    lines,
    entries: scanned.entries,
    lineEnding: firstNewline > 0 && text[firstNewline - 1] === '\r' ? '\r\n' : '\n',
    hasBom: text.startsWith('\uFEFF'),
    hasAddedKeysMarker: scanned.comments.some((c) => trimEndSpace(c) === ADDED_KEYS_MARKER),
  };
}

/** The keys the text assigns a value to (empty values included). */
export function definedKeys(text: string, file: string): Set<string> {
  return new Set(parseEnvText(text, file).values.keys());
}

export interface EnvPatchResult {
  text: string;
  /** Keys whose existing value was rewritten, in patch order. */
  changed: string[];
  /** Keys appended at the end, in patch order. */
  added: string[];
}

/**
 * Sets the listed keys and changes no other byte: comments, blank lines,
 * order, `export ` prefixes, spacing, CRLF, inline comments and a missing
 * final newline all stay. A duplicated key has its last occurrence (the one
 * compose uses) patched. Keys not in the file are appended after one
 * `# Added by fleet env-patch` line (written only if the file has none yet),
 * with the file's line ending. A value equal to the current one is left alone.
 * Throws EnvFileError, before changing anything, for an invalid key name or a
 * value that cannot be written safely (see encodeEnvValue).
 */
export function patchEnvText(text: string, patch: Record<string, string>, file: string): EnvPatchResult {
  for (const [key, value] of Object.entries(patch)) {
    if (!VARIABLE_NAME.test(key)) {
      throw new EnvFileError(file, 'not a valid variable name (letters, digits and _, not starting with a digit)', undefined, key);
    }
    if (typeof value !== 'string') {
      throw new EnvFileError(file, `value must be a string, got ${typeof value}`, undefined, key);
    }
  }
  const view = parseEnvText(text, file);
  const lastEntry = new Map<string, EnvEntry>();
  for (const entry of view.entries) lastEntry.set(entry.key, entry);

  const edits: { start: number; end: number; text: string }[] = [];
  const changed: string[] = [];
  const added: string[] = [];
  const appendedLines: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    const entry = lastEntry.get(key);
    if (!entry) {
      appendedLines.push(`${key}=${encodeEnvValue(value, '', file, key)}`);
      added.push(key);
      continue;
    }
    // An interpolated value only looks equal; compose would read something else.
    if (!entry.interpolated && entry.value === value) continue;
    let encoded = encodeEnvValue(value, entry.quote, file, key, entry.line);
    // `A= # note` is the value "# note" to compose: an emptied bare value before a comment needs quotes.
    if (encoded === '' && text.slice(entry.valueEnd, lineEnd(text, entry.valueEnd)).trim() !== '') encoded = '""';
    edits.push({ start: entry.valueStart, end: entry.valueEnd, text: encoded });
    changed.push(key);
  }

  let out = text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  }
  if (appendedLines.length > 0) {
    const eol = view.lineEnding;
    const hasContent = out.length > (view.hasBom ? 1 : 0);
    if (hasContent && !out.endsWith('\n')) out += eol;
    if (!view.hasAddedKeysMarker) out += ADDED_KEYS_MARKER + eol;
    out += appendedLines.map((line) => line + eol).join('');
  }
  return { text: out, changed, added };
}

/**
 * How a value is written, so that compose reads back exactly `value`:
 * - with `$`: single quotes, so compose does not interpolate it; refused when
 *   it also holds `'` (no quoting keeps both literal) or ends with `\`
 *   (compose-go reads `\'` as an escaped quote, leaving the value unterminated);
 * - else single quotes again when the old value was single-quoted and the new
 *   one has no `'` and does not end with `\`;
 * - else double quotes, `\` and `"` escaped, when the old value was
 *   double-quoted or the new one holds whitespace, `#`, `'`, `"` or `\`;
 * - else bare.
 * A line break is refused in every case: values are written on one line.
 */
export function encodeEnvValue(
  value: string,
  oldQuote: EnvEntry['quote'],
  file: string,
  key: string,
  line?: number,
): string {
  if (/[\r\n]/.test(value)) {
    throw new EnvFileError(file, 'value contains a line break; the env patch writes one-line values only', line, key);
  }
  if (value.includes('$')) {
    if (value.includes("'")) {
      throw new EnvFileError(file, `value contains both "$" and "'"; no quoting keeps both literal for compose`, line, key);
    }
    if (value.endsWith('\\')) {
      throw new EnvFileError(file, 'value contains "$" and ends with "\\"; compose cannot read that back literally', line, key);
    }
    return `'${value}'`;
  }
  if (oldQuote === "'" && !value.includes("'") && !value.endsWith('\\')) return `'${value}'`;
  if (oldQuote === '"' || NEEDS_DOUBLE_QUOTES.test(value)) {
    return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  }
  return value;
}

// Whitespace as either JS or Go sees it (U+0085 is Go-only, U+FEFF JS-only), plus the quote-worthy characters.
const NEEDS_DOUBLE_QUOTES = /[\s\u0085#'"\\]/;

export interface EnvFilePatchResult {
  changed: string[];
  added: string[];
  /** False when every value already matched and the file was left untouched. */
  written: boolean;
}

/**
 * Patches the `.env` file at `path` in place (see patchEnvText) and writes it
 * atomically, keeping its mode and owner, only when the text changed. A
 * missing file is created with mode 0600 (managed hosts start without one)
 * when there is something to write. Refuses a file that is not UTF-8, since
 * rewriting it would change bytes outside the patched values.
 */
export async function patchEnvFile(path: string, patch: Record<string, string>): Promise<EnvFilePatchResult> {
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let text = '';
  if (bytes) {
    try {
      // ignoreBOM keeps a BOM in the text, so it is written back.
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw new EnvFileError(path, 'is not valid UTF-8; refusing to rewrite it');
    }
  }
  const result = patchEnvText(text, patch, path);
  if (bytes && result.text === text) return { changed: [], added: [], written: false };
  if (!bytes && result.text === '') return { changed: [], added: [], written: false };
  await writeFileAtomic(path, result.text, bytes ? {} : { mode: 0o600 });
  return { changed: result.changed, added: result.added, written: true };
}

// ---------------------------------------------------------------------------
// The scanner: compose-go's dotenv parser (parser.go), with offsets.

/** Go's unicode.IsSpace: what compose-go skips between statements. */
const GO_SPACE_CLASS = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';
const SKIP_GO_SPACE = new RegExp(`[${GO_SPACE_CLASS}]*`, 'y');
const TRAILING_GO_SPACE = new RegExp(`[${GO_SPACE_CLASS}]+$`);
/** compose-go's isSpace: blanks within a line (note: `\r` included, `\n` not). */
const INLINE_SPACE = new Set(['\t', '\v', '\f', '\r', ' ', '\u0085', '\u00A0']);
const EXPORT_PREFIX = /export[\t\n\f\r ]/y;
const KEY_CHAR = /^[\p{L}\p{N}_.\-[\]]$/u;
/** The escapes compose-go expands in double-quoted values. */
const DOUBLE_QUOTE_ESCAPE = /\\(?:[abcfnrtv$"\\]|0\d{0,3})/g;

interface ScanResult {
  entries: EnvEntry[];
  /** Text of each comment, from `#` to the end of its line. */
  comments: string[];
}

function scanEnvText(text: string, file: string): ScanResult {
  const lineAt = lineIndex(text);
  const entries: EnvEntry[] = [];
  const comments: string[] = [];
  const n = text.length;
  let pos = text.startsWith('\uFEFF') ? 1 : 0;

  for (;;) {
    SKIP_GO_SPACE.lastIndex = pos;
    SKIP_GO_SPACE.exec(text);
    pos = SKIP_GO_SPACE.lastIndex;
    if (pos >= n) break;

    if (text[pos] === '#') {
      const newline = text.indexOf('\n', pos);
      comments.push(text.slice(pos, newline < 0 ? n : newline));
      if (newline < 0) break;
      pos = newline;
      continue;
    }

    const line = lineAt(pos);
    let p = pos;
    let exported = false;
    EXPORT_PREFIX.lastIndex = p;
    if (EXPORT_PREFIX.test(text)) {
      exported = true;
      p += 'export'.length;
      while (p < n && INLINE_SPACE.has(text[p]!)) p++;
    }

    // The key runs to `=`, `:` (YAML style) or a newline (a bare key, inherited from the shell).
    const keyStart = p;
    let terminator = -1;
    while (p < n) {
      const ch = String.fromCodePoint(text.codePointAt(p)!);
      if (ch === '=' || ch === ':' || ch === '\n') {
        terminator = p;
        break;
      }
      if (!INLINE_SPACE.has(ch) && !KEY_CHAR.test(ch)) {
        throw new EnvFileError(
          file,
          `unexpected character ${JSON.stringify(ch)} in variable name ${JSON.stringify(text.slice(keyStart, lineEnd(text, keyStart)).slice(0, 80))}`,
          lineAt(p),
        );
      }
      p += ch.length;
    }
    // A bare key at the very end defines nothing (compose-go's result there is an accident: key "").
    if (terminator < 0) break;
    const key = text.slice(keyStart, terminator).replace(TRAILING_GO_SPACE, '');
    if (key.includes(' ')) throw new EnvFileError(file, 'key cannot contain a space', line);
    // A bare key defines nothing in the file (compose-go would look it up in the shell environment).
    if (text[terminator] === '\n') {
      pos = terminator + 1;
      continue;
    }

    p = terminator + 1;
    while (p < n && INLINE_SPACE.has(text[p]!)) p++;
    const quote = text[p];
    if (quote === '"' || quote === "'") {
      const closing = scanQuoted(text, p, quote);
      if (!closing) {
        throw new EnvFileError(file, `unterminated quoted value ${text.slice(p, lineEnd(text, p)).slice(0, 80)}`, line);
      }
      const { raw, end } = closing;
      const decoded = quote === '"' ? expandEscapes(raw) : { value: raw, interpolated: false };
      entries.push({
        key,
        value: decoded.value,
        interpolated: decoded.interpolated,
        quote,
        exported,
        line,
        endLine: lineAt(end - 1),
        valueStart: p,
        valueEnd: end,
      });
      pos = end;
      continue;
    }

    // A bare value runs to the end of the line; " #" starts a comment.
    const end = lineEnd(text, p);
    let value = text.slice(p, end);
    const comment = value.indexOf(' #');
    if (comment >= 0) value = value.slice(0, comment);
    value = value.replace(TRAILING_GO_SPACE, '');
    let valueStart = p;
    if (value === '') {
      // Insert a new value before any `\r` the skip above passed over, not after it.
      valueStart = terminator + 1;
      while (valueStart < n && text[valueStart] !== '\r' && INLINE_SPACE.has(text[valueStart]!)) valueStart++;
    }
    entries.push({
      key,
      value,
      interpolated: value.includes('$'),
      quote: '',
      exported,
      line,
      endLine: line,
      valueStart,
      valueEnd: valueStart + value.length,
    });
    pos = end;
  }
  return { entries, comments };
}

/**
 * From the opening quote at `start`, finds the closing one. A backslash
 * escapes the next character: an escaped quote loses its backslash, anything
 * else keeps it (compose-go's extractQuotedValue).
 */
function scanQuoted(text: string, start: number, quote: '"' | "'"): { raw: string; end: number } | undefined {
  const special = quote === '"' ? /["\\]/g : /['\\]/g;
  let raw = '';
  let from = start + 1;
  for (;;) {
    special.lastIndex = from;
    const found = special.exec(text);
    if (!found) return undefined;
    const at = found.index;
    raw += text.slice(from, at);
    if (text[at] === quote) return { raw, end: at + 1 };
    if (at + 1 >= text.length) return undefined;
    const escaped = text[at + 1]!;
    raw += escaped === quote ? quote : `\\${escaped}`;
    from = at + 2;
  }
}

/** compose-go's expandEscapes, with `\$` giving a literal `$` (compose-go's `$$` after expansion). */
function expandEscapes(raw: string): { value: string; interpolated: boolean } {
  const interpolated = raw.replace(DOUBLE_QUOTE_ESCAPE, '').includes('$');
  const value = raw.replace(DOUBLE_QUOTE_ESCAPE, (match) => {
    switch (match[1]) {
      case 'a': return '\x07';
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'v': return '\v';
      case '$': return '$';
      case '"': return '"';
      case '\\': return '\\';
      case '0': {
        // Go's UnquoteChar: exactly three octal digits, at most 255; anything else stays as written.
        const digits = match.slice(2);
        if (!/^[0-7]{3}$/.test(digits)) return match;
        const code = parseInt(digits, 8);
        return code <= 255 ? String.fromCharCode(code) : match;
      }
      default: return match; // `\c`: in the pattern, but not an escape Go knows
    }
  });
  return { value, interpolated };
}

function lineEnd(text: string, from: number): number {
  const newline = text.indexOf('\n', from);
  return newline < 0 ? text.length : newline;
}

function trimEndSpace(s: string): string {
  return s.replace(TRAILING_GO_SPACE, '');
}

/** Offset -> 1-based line number, by binary search over the newline offsets. */
function lineIndex(text: string): (offset: number) => number {
  const newlines: number[] = [];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) newlines.push(i);
  return (offset) => {
    let lo = 0;
    let hi = newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (newlines[mid]! < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}
