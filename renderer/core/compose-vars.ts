// Which variables a compose file references and requires, read the way Docker
// Compose (compose-go's template package) reads them, so env coverage warns about
// exactly the names compose would complain about and no others.
//
// Both the scanner and the reference interpolator below port compose-go's own
// lexing on purpose, quirks included (a regex whose braced form runs greedily to the
// last `}` on the line, then a brace counter that cuts it back): a hand-written
// "cleaner" grammar would disagree with compose on odd but real values such as
// `${JSON:-{"a":1}}` or `${A:-x} ${B:-y}`.
//
// Deliberate differences from compose-go:
// - `${name[key]}` (compose-go's named mappings, unused by compose files) is an
//   invalid expression here rather than text kept as is.
// - Defaults, alternatives and messages are evaluated lazily (only when used), as
//   recent compose-go does; so a name that appears only inside one is referenced but
//   not required.
import yaml from 'js-yaml';
import { ComposeFileError } from './errors.js';

/**
 * An expression compose rejects with "invalid interpolation format" (`${}`,
 * `${foo }`, `${FOO:=x}`, an unterminated `${`). scanComposeText turns it into a
 * ComposeFileError naming the YAML path.
 */
export class InvalidInterpolationError extends Error {
  constructor(
    /** The whole string value that holds the bad expression. */
    readonly template: string,
  ) {
    super(`invalid interpolation format in ${JSON.stringify(template)}; write a literal $ as $$`);
    this.name = 'InvalidInterpolationError';
  }
}

/** `${VAR:?msg}` with VAR unset or empty, or `${VAR?msg}` with VAR unset (compose's wording). */
export class MissingRequiredVariableError extends Error {
  constructor(
    readonly variable: string,
    readonly reason: string,
  ) {
    super(`required variable ${variable} is missing a value${reason ? `: ${reason}` : ''}`);
    this.name = 'MissingRequiredVariableError';
  }
}

export interface VariableScan {
  /** Every name the value mentions, sorted, unique. */
  references: string[];
  /** Names compose cannot do without: `$VAR`, `${VAR}`, `${VAR:?msg}`, `${VAR?msg}` outside any default. */
  required: string[];
}

// compose-go matches names case-insensitively with `[_a-z]`; Go's case folding also
// lets U+017F (long s) and U+212A (Kelvin sign) through, so they are names here too.
const NAME = '[_A-Za-z\\u017F\\u212A][_A-Za-z0-9\\u017F\\u212A]*';
// Go's `.` stops at a newline only; JS's also stops at \r and U+2028/9, hence [^\n].
const PATTERN_SOURCE = `\\$(?:(\\$)|(${NAME})|\\{(?:(${NAME}(?::?[-+?][^\\n]*)?)\\}|()))`;
const PATTERN = new RegExp(PATTERN_SOURCE);
const PATTERN_ALL = new RegExp(PATTERN_SOURCE, 'g');

type Operator = ':?' | '?' | ':-' | '-' | ':+' | '+';
const OPERATORS: Operator[] = [':?', '?', ':-', '-', ':+', '+'];

/**
 * compose-go's getFirstBraceClosingIndex: counts every `{` (skipping the character
 * after it) and every `}`; -1 when they never balance.
 */
function firstBraceClosingIndex(s: string): number {
  let open = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '}') {
      open--;
      if (open === 0) return i;
    }
    if (s[i] === '{') {
      open++;
      i++;
    }
  }
  return -1;
}

/** The operator that appears first in the whole match, as compose-go picks it. */
function operatorOf(match: string): Operator | undefined {
  let best: Operator | undefined;
  let bestIndex = Infinity;
  for (const op of OPERATORS) {
    const i = match.indexOf(op);
    if (i >= 0 && i < bestIndex) {
      best = op;
      bestIndex = i;
    }
  }
  return best;
}

type Expression =
  | { kind: 'escaped' }
  | { kind: 'invalid' }
  | { kind: 'variable'; name: string }
  | { kind: 'operator'; name: string; operator: Operator; argument: string };

/** One regex match, cut back to its first balanced `}`; `rest` is the text after that, still to interpolate. */
function readMatch(match: string): { expression: Expression; rest: string } {
  const close = firstBraceClosingIndex(match);
  const head = close > -1 ? match.slice(0, close + 1) : match;
  const rest = close > -1 ? match.slice(close + 1) : '';
  const groups = PATTERN.exec(head);
  if (!groups) return { expression: { kind: 'invalid' }, rest: '' };
  const [, escaped, named, braced] = groups;
  if (escaped !== undefined) return { expression: { kind: 'escaped' }, rest };
  if (named !== undefined) return { expression: { kind: 'variable', name: named }, rest };
  if (braced === undefined) return { expression: { kind: 'invalid' }, rest };
  const operator = operatorOf(match);
  if (operator === undefined) return { expression: { kind: 'variable', name: braced }, rest };
  // A name holds no operator character, so the operator's first occurrence ends it.
  const at = braced.indexOf(operator);
  return {
    expression: {
      kind: 'operator',
      name: braced.slice(0, at),
      operator,
      argument: braced.slice(at + operator.length),
    },
    rest,
  };
}

/**
 * Adds the names `value` mentions to the sets. An explicit work list instead of
 * recursion: a value of a few thousand chained or nested expressions must give an
 * answer, not a stack overflow.
 */
function scanInto(value: string, references: Set<string>, required: Set<string>): void {
  const work: { text: string; topLevel: boolean }[] = [{ text: value, topLevel: true }];
  for (let item = work.pop(); item; item = work.pop()) {
    const { text, topLevel } = item;
    for (const m of text.matchAll(PATTERN_ALL)) {
      const { expression, rest } = readMatch(m[0]);
      switch (expression.kind) {
        case 'escaped':
          break;
        case 'invalid':
          throw new InvalidInterpolationError(value);
        case 'variable':
          references.add(expression.name);
          if (topLevel) required.add(expression.name);
          break;
        case 'operator': {
          references.add(expression.name);
          const isRequiredForm = expression.operator === ':?' || expression.operator === '?';
          if (topLevel && isRequiredForm) required.add(expression.name);
          work.push({ text: expression.argument, topLevel: false });
          break;
        }
      }
      // compose-go interpolates the text after the balanced `}` unconditionally, at the
      // same level as the expression itself.
      if (rest) work.push({ text: rest, topLevel });
    }
  }
}

const sorted = (names: Iterable<string>): string[] => [...new Set(names)].sort();

/**
 * The variables one compose string value references and requires.
 * @throws InvalidInterpolationError on an expression compose rejects, wherever it sits.
 */
export function scanInterpolation(value: string): VariableScan {
  const references = new Set<string>();
  const required = new Set<string>();
  scanInto(value, references, required);
  return { references: sorted(references), required: sorted(required) };
}

const lookup = (env: Record<string, string | undefined>, name: string): string | undefined =>
  Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;

/**
 * Interpolates one value exactly as compose does: the reference the scanner is
 * checked against. `onUnset` hears each name compose would warn about ("variable is
 * not set. Defaulting to a blank string"). With `onRequiredMissing`, a failed `:?` /
 * `?` is reported there and substituted blank instead of thrown, so one pass names
 * every failure where compose stops at the first.
 * @throws InvalidInterpolationError, or MissingRequiredVariableError for `:?` / `?`.
 */
export function interpolate(
  value: string,
  env: Record<string, string | undefined>,
  onUnset?: (name: string) => void,
  onRequiredMissing?: (name: string) => void,
): string {
  const evaluate = (template: string): string =>
    template.replace(PATTERN_ALL, (match) => {
      const { expression, rest } = readMatch(match);
      let out: string;
      switch (expression.kind) {
        case 'escaped':
          out = '$';
          break;
        case 'invalid':
          throw new InvalidInterpolationError(value);
        case 'variable': {
          const v = lookup(env, expression.name);
          if (v === undefined) onUnset?.(expression.name);
          out = v ?? '';
          break;
        }
        case 'operator':
          out = applyOperator(expression.name, expression.operator, expression.argument);
          break;
      }
      return rest ? out + evaluate(rest) : out;
    });

  const applyOperator = (name: string, operator: Operator, argument: string): string => {
    const v = lookup(env, name);
    const set = v !== undefined;
    const nonEmpty = set && v !== '';
    switch (operator) {
      case ':-':
        return nonEmpty ? v : evaluate(argument);
      case '-':
        return set ? v : evaluate(argument);
      case ':+':
        return nonEmpty ? evaluate(argument) : '';
      case '+':
        return set ? evaluate(argument) : '';
      case ':?':
      case '?':
        if (operator === ':?' ? nonEmpty : set) return v ?? '';
        {
          // The message is interpolated before compose stops (its names warn too).
          const reason = evaluate(argument);
          if (!onRequiredMissing) throw new MissingRequiredVariableError(name, reason);
          onRequiredMissing(name);
          return '';
        }
    }
  };

  return evaluate(value);
}

/**
 * docker-compose v1's interpolation (compose/config/interpolation.py, 1.29), which is
 * not compose-go's: a default or a message is the literal text up to the first `}`
 * (`${A:-$B}` gives `$B` itself, never B's value), and there is no `:+` / `+`.
 */
const V1_PATTERN = /\$(?:(\$)|([_a-z][_a-z0-9]*)|\{([_a-z][_a-z0-9]*)(?:(:?[-?])([^}]*))?\}|())/gi;

/**
 * Interpolates one value as docker-compose v1 does (checked against the real binary in
 * compose-vars.v1.test.ts); the callbacks as for `interpolate`.
 * @throws InvalidInterpolationError, or MissingRequiredVariableError for `:?` / `?`.
 */
export function interpolateV1(
  value: string,
  env: Record<string, string | undefined>,
  onUnset?: (name: string) => void,
  onRequiredMissing?: (name: string) => void,
): string {
  const required = (name: string, message: string): string => {
    if (!onRequiredMissing) throw new MissingRequiredVariableError(name, message || name);
    onRequiredMissing(name);
    return '';
  };
  return value.replace(
    V1_PATTERN,
    (_m, escaped?: string, named?: string, braced?: string, sep?: string, argument = '', invalid?: string) => {
      if (escaped !== undefined) return '$';
      const name = named ?? braced;
      if (name === undefined || invalid !== undefined) throw new InvalidInterpolationError(value);
      const v = lookup(env, name);
      switch (sep) {
        case ':-':
          return v || argument;
        case '-':
          return v ?? argument;
        case ':?':
          return v ? v : required(name, argument);
        case '?':
          return v !== undefined ? v : required(name, argument);
        default:
          if (v === undefined) onUnset?.(name);
          return v ?? '';
      }
    },
  );
}

function yamlPathJoin(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}

/**
 * Every string value (never a key) of a loaded YAML tree, with its path. An alias
 * is the same object as its anchor, so each object is walked once: a chain of
 * aliases (a "billion laughs" file) costs its size, not its expansion.
 */
function forEachStringValue(root: unknown, visit: (path: string, value: string) => void): void {
  const seen = new Set<object>();
  const work: [unknown, string][] = [[root, '']];
  for (let item = work.pop(); item; item = work.pop()) {
    const [node, path] = item;
    if (typeof node === 'string') visit(path, node);
    else if (node === null || typeof node !== 'object' || seen.has(node)) continue;
    else if (Array.isArray(node)) {
      seen.add(node);
      for (let i = node.length - 1; i >= 0; i--) work.push([node[i], yamlPathJoin(path, i)]);
    } else {
      seen.add(node);
      const entries = Object.entries(node);
      for (let i = entries.length - 1; i >= 0; i--) work.push([entries[i]![1], yamlPathJoin(path, entries[i]![0])]);
    }
  }
}

// Compose's own tags (`!reset`, `!override`) on any kind of node; the value is kept as written.
const COMPOSE_TAGS = (['scalar', 'sequence', 'mapping'] as const).flatMap((kind) =>
  ['!reset', '!override'].map((tag) => new yaml.Type(tag, { kind, construct: (data: unknown) => data })),
);
const COMPOSE_SCHEMA = yaml.DEFAULT_SCHEMA.extend(COMPOSE_TAGS);

/**
 * The variables a compose file references and requires, over every string value.
 * js-yaml rather than `yaml` here: this runs on every rendered compose file, and it
 * loads one ~10x faster; `yaml` stays where comments must survive an edit.
 * @throws ComposeFileError when the text is not YAML (with the line), its top level is
 * not a mapping, or a value holds an invalid expression (with the value's YAML path).
 */
export function scanComposeText(yamlText: string, file: string): VariableScan {
  const references = new Set<string>();
  const required = new Set<string>();
  forEachComposeValue(yamlText, file, (value) => scanInto(value, references, required));
  return { references: sorted(references), required: sorted(required) };
}

/**
 * Calls `visit` with every string value of a compose file.
 * @throws ComposeFileError as scanComposeText describes.
 */
function forEachComposeValue(yamlText: string, file: string, visit: (value: string) => void): void {
  loadComposeTree(yamlText, file, (path, value) => {
    try {
      visit(value);
    } catch (e) {
      if (e instanceof InvalidInterpolationError) throw invalidAt(file, path, value);
      throw e;
    }
  });
}

const invalidAt = (file: string, path: string, value: string): ComposeFileError =>
  new ComposeFileError(file, path, `invalid interpolation format in ${JSON.stringify(value)}; write a literal $ as $$`);

/** Loads a compose file and calls `visit` with each string value and its YAML path. */
function loadComposeTree(yamlText: string, file: string, visit: (path: string, value: string) => void): void {
  let tree: unknown;
  try {
    // Duplicate keys are an error (as in compose); `<<` merge keys are resolved.
    tree = yaml.load(yamlText, { schema: COMPOSE_SCHEMA });
  } catch (e) {
    if (!(e instanceof yaml.YAMLException)) throw e;
    const mark = e.mark as { line: number; column: number } | undefined;
    const where = mark ? ` (line ${mark.line + 1}, column ${mark.column + 1})` : '';
    throw new ComposeFileError(file, '', `not valid YAML${where}: ${e.reason}`);
  }
  if (tree !== null && tree !== undefined && (typeof tree !== 'object' || Array.isArray(tree))) {
    throw new ComposeFileError(file, '', 'the top level of a compose file must be a mapping');
  }
  forEachStringValue(tree, visit);
}

/** compose-go's default compose file names, in the order it takes the first one present. */
export const COMPOSE_FILE_NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;

/** What compose would complain about while interpolating, each list sorted and unique. */
export interface VariableEvaluation {
  /** Names compose substitutes blank with "The X variable is not set. Defaulting to a blank string." */
  unset: string[];
  /** Names of a `${X:?}` / `${X?}` compose stops on ("required variable X is missing a value"). */
  requiredMissing: string[];
  /** Both together: the names the stack lacks, given these values. */
  missing: string[];
}

/** Collects what evaluating values reports; `done` turns it into a VariableEvaluation. */
export class EvaluationCollector {
  readonly unset = new Set<string>();
  readonly requiredMissing = new Set<string>();
  readonly onUnset = (name: string): void => void this.unset.add(name);
  readonly onRequiredMissing = (name: string): void => void this.requiredMissing.add(name);
  done(): VariableEvaluation {
    return {
      unset: sorted(this.unset),
      requiredMissing: sorted(this.requiredMissing),
      missing: sorted([...this.unset, ...this.requiredMissing]),
    };
  }
}

/**
 * Interpolates every string value of a compose file against `env` as compose does,
 * recording the names it would blank with a warning or stop on. Unlike `required`,
 * this follows the values: `${A:-$B}` needs B only when A is unset or empty.
 * @throws ComposeFileError as scanComposeText describes.
 */
export function evaluateComposeText(
  yamlText: string,
  file: string,
  env: Record<string, string | undefined>,
  /** Which compose interpolates: compose-go (v2) or docker-compose v1, whose rules differ (interpolateV1). */
  flavour: 'v1' | 'v2' = 'v2',
): VariableEvaluation {
  const text = composeTextMemo(yamlText, file);
  // What compose reports depends on each name being unset, empty or not, never on the
  // value itself (a substituted value is not read again): one evaluation per pattern.
  const pattern = text.references
    .map((name) => {
      const v = lookup(env, name);
      return v === undefined ? 'u' : v === '' ? 'e' : 'n';
    })
    .join('') + flavour;
  let evaluation = text.byPattern.get(pattern);
  if (!evaluation) {
    const collector = new EvaluationCollector();
    const interpolateWith = flavour === 'v1' ? interpolateV1 : interpolate;
    for (const value of text.values) interpolateWith(value, env, collector.onUnset, collector.onRequiredMissing);
    evaluation = collector.done();
    if (text.byPattern.size >= PATTERN_MEMO_LIMIT) text.byPattern.clear();
    text.byPattern.set(pattern, evaluation);
  }
  return { unset: [...evaluation.unset], requiredMissing: [...evaluation.requiredMissing], missing: [...evaluation.missing] };
}

interface ComposeTextMemo {
  /** The string values that hold a `$`: the only ones interpolation can change. */
  values: string[];
  /** Every name those values mention: all an evaluation can look up. */
  references: string[];
  byPattern: Map<string, VariableEvaluation>;
}

// A plan evaluates every tenant's compose file, base and head, and most tenants share
// one text and a few patterns of values: the YAML is loaded once per distinct text,
// and evaluated once per pattern. Bounded like render's scan memo.
const TEXT_MEMO_LIMIT = 64;
const PATTERN_MEMO_LIMIT = 64;
const textMemo = new Map<string, ComposeTextMemo>();

/** @throws ComposeFileError as scanComposeText describes (never memoized). */
function composeTextMemo(yamlText: string, file: string): ComposeTextMemo {
  const known = textMemo.get(yamlText);
  if (known) return known;
  const values: string[] = [];
  const references = new Set<string>();
  forEachComposeValue(yamlText, file, (value) => {
    if (!value.includes('$')) return;
    // Rejects what compose rejects, on every branch, before any evaluation.
    scanInto(value, references, new Set());
    values.push(value);
  });
  const memo = { values, references: sorted(references), byPattern: new Map<string, VariableEvaluation>() };
  if (textMemo.size >= TEXT_MEMO_LIMIT) textMemo.clear();
  textMemo.set(yamlText, memo);
  return memo;
}


/** The required names `defined` lacks, sorted. */
export function missingVariables(required: string[], defined: Iterable<string>): string[] {
  const have = new Set(defined);
  return sorted(required.filter((name) => !have.has(name)));
}
