// Reading and patching `.env` files the way Docker Compose reads them.
//
// Compose (v2, through compose-spec/compose-go's dotenv package) is the
// consumer of every `.env` Flotilla touches, so it is the reference here, not
// the `dotenv` npm package: the two disagree on exactly the values the patcher
// writes (`"a\"b"` is `a"b` to compose and `a\"b` to dotenv, `FOO=1#2` is
// `1#2` to compose and `1` to dotenv). The scanner below follows compose-go's
// parser statement by statement and additionally records where each value sits
// in the text, which is what lets the patcher change a value and nothing else.
// The scanner does not expand variables: values are reported as written, and
// `interpolated` says when compose would expand `$` in them; readEnvValues
// gives compose's whole reading, expansion included.
//
// docker-compose 1.29 (compose v1) reads `.env` with python-dotenv 0.21, which
// differs (no `\$`, `\\` decoded in single quotes, `${...}` expanded in every
// form), so values are written for one compose flavour; the python-dotenv
// reader below is checked against the real binary (env-file.compose-v1.test.ts).
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-write.js';
import { interpolate } from './compose-vars.js';
import { EnvFileError } from './errors.js';

/**
 * Which compose reads the `.env`: `v2` is compose-go's dotenv (Docker Compose
 * v2), `v1` is docker-compose 1.29, which reads it with python-dotenv 0.21.
 * They disagree on escapes and on `$`, so a value is written for one of them.
 */
export type ComposeFlavour = 'v1' | 'v2';

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
 * with the file's line ending. A value `flavour` already reads as the patched
 * one is left alone. Throws EnvFileError, before changing anything, for an
 * invalid key name or a value `flavour` cannot read back (see encodeEnvValue).
 */
export function patchEnvText(
  text: string,
  patch: Record<string, string>,
  file: string,
  flavour: ComposeFlavour = 'v2',
): EnvPatchResult {
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
  // python-dotenv reads some forms differently from compose-go, so "already equal" is v1's own reading there.
  const v1Reading = flavour === 'v1' ? readPythonDotenv(text) : undefined;

  const edits: { start: number; end: number; text: string }[] = [];
  const changed: string[] = [];
  const added: string[] = [];
  const appendedLines: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    const entry = lastEntry.get(key);
    if (!entry) {
      appendedLines.push(`${key}=${encodeEnvValue(value, '', file, key, undefined, flavour)}`);
      added.push(key);
      continue;
    }
    // An interpolated value only looks equal; compose would read something else.
    if (v1Reading ? v1Reading.get(key)?.literal === value : !entry.interpolated && entry.value === value) continue;
    const after = text.slice(entry.valueEnd, lineEnd(text, entry.valueEnd));
    let encoded = encodeEnvValue(value, entry.quote, file, key, entry.line, flavour, after);
    // `A= # note` is the value "# note" to compose: an emptied bare value before a comment needs quotes.
    if (encoded === '' && after.trim() !== '') encoded = '""';
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
  if (flavour === 'v1' && (changed.length > 0 || added.length > 0)) {
    // python-dotenv reads lines compose-go rejects or reads otherwise (`A: x` is no
    // assignment to it), so the whole result is read back, not only the new slots.
    const reading = readPythonDotenv(out);
    for (const key of [...changed, ...added]) {
      if (reading.get(key)?.literal !== patch[key]) {
        throw new EnvFileError(file, V1_CANNOT_READ_LINE, lastEntry.get(key)?.line, key);
      }
    }
  }
  return { text: out, changed, added };
}

/**
 * Whether the two composes need different bytes for this patch (or one of them
 * refuses it): only then does a host have to find out which compose it runs.
 * Most patches are written the same for both.
 */
export function composeFlavourMatters(text: string, patch: Record<string, string>, file: string): boolean {
  const attempt = (flavour: ComposeFlavour): string | EnvFileError => {
    try {
      return patchEnvText(text, patch, file, flavour).text;
    } catch (err) {
      if (err instanceof EnvFileError) return err;
      throw err;
    }
  };
  const v1 = attempt('v1');
  const v2 = attempt('v2');
  if (typeof v1 === 'string' || typeof v2 === 'string') return v1 !== v2;
  return v1.message !== v2.message;
}

const V1_CANNOT_READ_LINE =
  'compose v1 (python-dotenv) would not read this line back as the patched value; rewrite it as KEY=value by hand';

/**
 * How a value is written so that `flavour` reads back exactly `value`. The
 * forms, in order of preference (the first that `flavour` reads back wins, so
 * values written before keep their form):
 * - with `$`: single quotes, which neither compose expands; else double
 *   quotes, with `$` escaped as `\$` for compose-go (python-dotenv has no
 *   escape for `$` and expands only `${...}`, so v1 gets the `$` as it is);
 * - else single quotes again when the old value was single-quoted;
 * - double quotes, `\` and `"` escaped, when the old value was double-quoted
 *   or the new one holds whitespace, `#`, `'`, `"` or `\`;
 * - bare; then single quotes with `'` escaped as `\'`, then bare again.
 * For v1 the first form compose-go also reads back wins over the others.
 * Refused, with the reason and never the value: a line break (values are
 * written on one line), text that is not well-formed UTF-16 (a lone surrogate
 * cannot be written as UTF-8), for v1 a `${NAME}` or `${NAME:-x}` (python-dotenv
 * expands it in every form), and whatever else no form reads back.
 * `after` is what follows the value on its line (an inline comment, spaces).
 */
export function encodeEnvValue(
  value: string,
  oldQuote: EnvEntry['quote'],
  file: string,
  key: string,
  line?: number,
  flavour: ComposeFlavour = 'v2',
  after = '',
): string {
  const refuse = (detail: string): never => {
    throw new EnvFileError(file, detail, line, key);
  };
  if (/[\r\n]/.test(value)) refuse('value contains a line break; the env patch writes one-line values only');
  if (LONE_SURROGATE.test(value)) refuse('value holds a lone UTF-16 surrogate, which cannot be written as UTF-8');
  if (flavour === 'v1') {
    PYTHON_DOTENV_VARIABLE.lastIndex = 0;
    if (PYTHON_DOTENV_VARIABLE.test(value)) {
      refuse('value contains "${...}", which compose v1 (python-dotenv) expands in every quoting; it cannot be written for this host');
    }
  }
  // The common case, without reading candidates back: both composes read these characters bare as written.
  if (oldQuote === '' && PLAIN_VALUE.test(value)) return value;
  const bare = value;
  const single = `'${value}'`;
  const double = `"${value.replace(flavour === 'v1' ? /[\\"]/g : /[\\"$]/g, (c) => `\\${c}`)}"`;
  const singleEscaped = `'${value.replace(/'/g, "\\'")}'`;
  const candidates: string[] = [];
  if (value.includes('$')) candidates.push(single, double);
  else {
    if (oldQuote === "'") candidates.push(single);
    if (oldQuote === '"' || NEEDS_DOUBLE_QUOTES.test(value)) candidates.push(double);
    candidates.push(bare, double);
  }
  candidates.push(singleEscaped, bare);
  // For v1, a form compose-go reads back too comes first: the agent's env coverage reads
  // `.env` as compose-go does, and the host may move to compose v2 later.
  if (flavour === 'v1') {
    for (const candidate of candidates) {
      if (readsBack(candidate, value, 'v1', after) && readsBack(candidate, value, 'v2', after)) return candidate;
    }
  }
  for (const candidate of candidates) {
    if (readsBack(candidate, value, flavour, after)) return candidate;
  }
  return refuse(
    flavour === 'v1'
      ? 'no quoting makes compose v1 (python-dotenv) read this value back exactly: a quoted value cannot end with "\\" there, and this one cannot be written bare'
      : 'no quoting makes compose read this value back exactly',
  );
}

const PLAIN_VALUE = /^[A-Za-z0-9_.,/:@+=-]+$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

// Whitespace as either JS or Go sees it (U+0085 is Go-only, U+FEFF JS-only), plus the quote-worthy characters.
const NEEDS_DOUBLE_QUOTES = /[\s\u0085#'"\\]/;

/**
 * Whether `flavour` reads `written`, followed by `after` on its line, as
 * `value`. A following line holding both quotes is part of the test: an
 * unterminated quote (python-dotenv's `"a\\"`, compose-go's `'a\'`) runs on
 * to the next quote in the file, wherever that is.
 */
function readsBack(written: string, value: string, flavour: ComposeFlavour, after: string): boolean {
  const text = `K=${written}${after}\n# "'\nL=1\n`;
  if (flavour === 'v1') return readPythonDotenv(text).get('K')?.literal === value;
  try {
    const entry = parseEnvText(text, 'probe').entries.find((e) => e.key === 'K');
    return entry !== undefined && !entry.interpolated && entry.value === value && entry.endLine === 1;
  } catch {
    return false;
  }
}

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
 * rewriting it would change bytes outside the patched values. `flavour` is the
 * compose that reads the file, or a way to find out.
 */
export async function patchEnvFile(
  path: string,
  patch: Record<string, string>,
  flavour: ComposeFlavour | (() => Promise<ComposeFlavour>) = 'v2',
): Promise<EnvFilePatchResult> {
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
  // A resolver (which may have to ask compose) is called only when the flavours need different bytes.
  const resolved = typeof flavour === 'function' ? (composeFlavourMatters(text, patch, path) ? await flavour() : 'v2') : flavour;
  const result = patchEnvText(text, patch, path, resolved);
  if (bytes && result.text === text) return { changed: [], added: [], written: false };
  if (!bytes && result.text === '') return { changed: [], added: [], written: false };
  await writeFileAtomic(path, result.text, bytes ? {} : { mode: 0o600 });
  return { changed: result.changed, added: result.added, written: true };
}

/**
 * Each key's value as `flavour` reads `.env` text, variables expanded from
 * the file's earlier keys and `environment` (the shell compose runs in): for
 * v2 the shell wins over the file (compose-go looks it up first), for v1 the
 * file wins (python-dotenv's override). v2 throws EnvFileError where compose-go refuses
 * the file (syntax, an invalid `$` expression, a missing `${X:?}`); v1 skips
 * lines python-dotenv cannot parse, as it does. A bare `KEY` line is left out
 * for v2 (compose-go takes it from the shell) and empty for v1 (docker-compose
 * reads it so).
 */
export function readEnvValues(
  text: string,
  file: string,
  flavour: ComposeFlavour,
  environment: Record<string, string> = {},
): Map<string, string> {
  if (flavour === 'v1') {
    const out = new Map<string, string>();
    // docker-compose takes a `KEY` line without `=` (python-dotenv's None) for an empty value.
    for (const [key, read] of readPythonDotenv(text, environment)) out.set(key, read.value ?? '');
    return out;
  }
  const scanned = scanEnvText(text, file);
  const out = new Map<string, string>();
  scanned.entries.forEach((entry, i) => {
    const template = scanned.templates[i];
    if (template === undefined) {
      out.set(entry.key, entry.value);
      return;
    }
    try {
      out.set(entry.key, interpolate(template, { ...Object.fromEntries(out), ...environment }));
    } catch (err) {
      // The compose error quotes the value; the reason alone is said here, since values may be secret.
      const reason = err instanceof Error && err.name === 'MissingRequiredVariableError' ? 'a required variable is missing' : 'invalid "$" expression';
      throw new EnvFileError(file, `compose cannot expand the value: ${reason}`, entry.line, entry.key);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------
// python-dotenv 0.21 (what docker-compose 1.29 reads `.env` with), rule for rule:
// dotenv/parser.py parse_stream, dotenv/main.py resolve_variables, dotenv/variables.py.

/** Python's `\s` (str.isspace): JS's without U+FEFF, plus U+001C-U+001F. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** `[^\S\r\n]`: Python whitespace other than a line break. */
const PY_INLINE_SPACE = PY_SPACE.replace('\\n\\v\\f\\r', '\\v\\f');
const pyRegex = (source: string) => new RegExp(source.replaceAll('\\s', `[${PY_SPACE}]`).replaceAll('[^\\S\\r\\n]', `[${PY_INLINE_SPACE}]`), 'y');
const PY = {
  multilineWhitespace: pyRegex('\\s*'),
  whitespace: pyRegex('[^\\S\\r\\n]*'),
  export: pyRegex('(?:export[^\\S\\r\\n]+)?'),
  singleQuotedKey: pyRegex("'([^']+)'"),
  unquotedKey: new RegExp(`([^=#${PY_SPACE}]+)`, 'y'),
  equalSign: pyRegex('(=[^\\S\\r\\n]*)'),
  singleQuotedValue: pyRegex("'((?:\\\\'|[^'])*)'"),
  doubleQuotedValue: pyRegex('"((?:\\\\"|[^"])*)"'),
  unquotedValue: pyRegex('([^\\r\\n]*)'),
  comment: pyRegex('(?:[^\\S\\r\\n]*#[^\\r\\n]*)?'),
  endOfLine: pyRegex('[^\\S\\r\\n]*(?:\\r\\n|\\n|\\r|$)'),
  restOfLine: pyRegex('[^\\r\\n]*(?:\\r|\\n|\\r\\n)?'),
};
const PY_INLINE_COMMENT = new RegExp(`[${PY_SPACE}]+#[\\s\\S]*`);
const PY_TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);
const PY_DOUBLE_QUOTE_ESCAPES = /\\[\\'"abfnrtv]/g;
const PY_SINGLE_QUOTE_ESCAPES = /\\[\\']/g;
const PY_ESCAPE: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };
/** What python-dotenv expands: `${NAME}` and `${NAME:-default}`, nothing else. */
const PYTHON_DOTENV_VARIABLE = /\$\{([^}:]*)(?::-([^}]*))?\}/g;

interface PythonDotenvValue {
  /** The value after expansion; undefined for a `KEY` line without `=`. */
  value: string | undefined;
  /** The value when it holds nothing python-dotenv expands, so it reads the same in every environment. */
  literal: string | undefined;
}

/** What docker-compose 1.29 reads from `.env` text: each key's last value, expanded. */
function readPythonDotenv(text: string, environment: Record<string, string> = {}): Map<string, PythonDotenvValue> {
  // Read as docker-compose opens it: encoding utf-8-sig (a BOM dropped), universal newlines.
  const s = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  let pos = 0;
  const match = (regex: RegExp): RegExpExecArray | undefined => {
    regex.lastIndex = pos;
    const m = regex.exec(s);
    if (!m) return undefined;
    pos = regex.lastIndex;
    return m;
  };
  const must = (regex: RegExp): RegExpExecArray => {
    const m = match(regex);
    if (!m) throw PARSE_ERROR;
    return m;
  };
  const bindings: [string, string | undefined][] = [];
  while (pos < s.length) {
    try {
      must(PY.multilineWhitespace);
      if (pos >= s.length) break;
      must(PY.export);
      if (s[pos] === '#') {
        must(PY.comment);
        must(PY.endOfLine);
        continue;
      }
      const key = must(s[pos] === "'" ? PY.singleQuotedKey : PY.unquotedKey)[1]!;
      must(PY.whitespace);
      let value: string | undefined;
      if (s[pos] === '=') {
        must(PY.equalSign);
        value = readPythonValue(s[pos], must);
      }
      must(PY.comment);
      must(PY.endOfLine);
      bindings.push([key, value]);
    } catch (err) {
      if (err !== PARSE_ERROR) throw err;
      // From where the failing rule stopped, not from the statement's start: a quoted
      // value already read over several lines stays read.
      must(PY.restOfLine);
    }
  }

  const out = new Map<string, PythonDotenvValue>();
  for (const [key, raw] of bindings) {
    if (raw === undefined) {
      out.set(key, { value: undefined, literal: undefined });
      continue;
    }
    let expanded = false;
    const value = raw.replace(PYTHON_DOTENV_VARIABLE, (_m, name: string, fallback: string | undefined) => {
      expanded = true;
      const own = out.get(name);
      if (own) return own.value ?? '';
      return Object.hasOwn(environment, name) ? environment[name]! : (fallback ?? '');
    });
    out.delete(key);
    out.set(key, { value, literal: expanded ? undefined : value });
  }
  return out;
}

const PARSE_ERROR = new Error('python-dotenv parse error');

function readPythonValue(first: string | undefined, must: (regex: RegExp) => RegExpExecArray): string {
  const unescape = (escapes: RegExp, raw: string) => raw.replace(escapes, (m) => PY_ESCAPE[m[1]!]!);
  if (first === "'") return unescape(PY_SINGLE_QUOTE_ESCAPES, must(PY.singleQuotedValue)[1]!);
  if (first === '"') return unescape(PY_DOUBLE_QUOTE_ESCAPES, must(PY.doubleQuotedValue)[1]!);
  if (first === undefined || first === '\n' || first === '\r') return '';
  return must(PY.unquotedValue)[1]!.replace(PY_INLINE_COMMENT, '').replace(PY_TRAILING_SPACE, '');
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
  /** Per entry, what compose-go expands variables in (`\$` as `$$`); undefined for single-quoted values. */
  templates: (string | undefined)[];
  /** Text of each comment, from `#` to the end of its line. */
  comments: string[];
}

/**
 * Each assignment of `.env` text with what compose-go expands in its value (`\$` as `$$`;
 * undefined for a value taken as written): readEnvValues and the coverage check
 * (compose-vars.ts composeEnvironment) read a `.env` through this one reading.
 */
export function envTemplates(text: string, file: string): Pick<ScanResult, 'entries' | 'templates'> {
  return scanEnvText(text, file);
}

function scanEnvText(text: string, file: string): ScanResult {
  const lineAt = lineIndex(text);
  const entries: EnvEntry[] = [];
  const templates: (string | undefined)[] = [];
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
      const decoded = quote === '"' ? expandEscapes(raw) : { value: raw, interpolated: false, template: undefined };
      templates.push(decoded.template);
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
    templates.push(value);
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
  return { entries, templates, comments };
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

/**
 * compose-go's expandEscapes: `template` is its result, which compose-go then
 * expands variables in (`\$` became `$$` there); `value` reads `\$` as the
 * literal `$` it ends as.
 */
function expandEscapes(raw: string): { value: string; interpolated: boolean; template: string } {
  const interpolated = raw.replace(DOUBLE_QUOTE_ESCAPE, '').includes('$');
  const template = raw.replace(DOUBLE_QUOTE_ESCAPE, (match) => (match === '\\$' ? '$$' : unescapeOne(match)));
  const value = raw.replace(DOUBLE_QUOTE_ESCAPE, (match) => (match === '\\$' ? '$' : unescapeOne(match)));
  return { value, interpolated, template };
}

/** One escape of DOUBLE_QUOTE_ESCAPE other than `\$`, as Go's strconv.UnquoteChar reads it. */
function unescapeOne(match: string): string {
  switch (match[1]) {
    case 'a': return '\x07';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'v': return '\v';
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
