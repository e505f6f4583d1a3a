// Which parts of the context a template reads, found from its syntax tree, and which
// of them it only writes out as they are, so a render can reuse a template's output
// for every tenant whose values at the other paths are the same, putting in each
// tenant's own written-out values (its slug, its domain). In a fleet most tenants
// share those other inputs (image names, tag, a few env defaults and flags).
//
// The analysis is conservative: any construct whose reads it cannot bound (the whole
// context, partials, decorators, a block helper other than if/unless/each/with)
// makes the template "reads anything" and it is never reused. It relies on the
// templates being compiled without `compat` (no lookups up the scope chain) and on
// every helper reading only its arguments, never `this` or @root (true of render.ts's).
/** A context path, e.g. ['env', 'LOG_LEVEL']. */
export type ContextPath = readonly string[];

/** Block helpers whose body runs with a context the analysis can bound. */
const SAME_CONTEXT_BLOCKS = new Set(['if', 'unless']);
const NEW_CONTEXT_BLOCKS = new Set(['each', 'with']);

class UnboundedRead extends Error {}

/** What a template reads, split by how it uses each value. */
export interface TemplateInputs {
  /** Paths whose values can change what the template writes besides themselves: a reuse key. */
  keyed: ContextPath[];
  /**
   * Paths only ever written out as they are (`{{domain}}`, or through a verbatim helper
   * such as `{{json (concat slug "-web")}}`), read nowhere else, and neither inside nor
   * around another read path. A reused output holds a marker where each was written.
   */
  verbatim: ContextPath[];
}

/**
 * The root-context paths a template reads, deduplicated; undefined when they cannot
 * be bounded. Reading a path reads everything under it (`each env` reads all of env).
 * `helpers` names every helper (a bare `{{name}}` that is one is a call, not a read);
 * `verbatimHelpers` those whose result is their arguments' text joined, unchanged
 * for the strings render.ts lets through (concat; json of a string with nothing to escape).
 */
export function templateInputs(
  ast: hbs.AST.Program,
  helpers: ReadonlySet<string> = new Set(),
  verbatimHelpers: ReadonlySet<string> = new Set(),
): TemplateInputs | undefined {
  const keyed = new Map<string, ContextPath>();
  const verbatim = new Map<string, ContextPath>();
  const record = (path: ContextPath, written: boolean) => {
    if (path.length === 0) throw new UnboundedRead();
    (written ? verbatim : keyed).set(JSON.stringify(path), path);
  };
  // `scopes` counts the context-changing blocks around a node; a path at depth d
  // resolves in the scope d levels up, and only the root scope is recorded: a read
  // inside an `each X` body is a read of X, which the block already recorded.
  // `written` says the value goes straight to the output (or into a verbatim helper that does).
  const visitPath = (path: hbs.AST.PathExpression, scopes: number, written: boolean) => {
    if (path.data) {
      // @root.x reads x; @index, @key, @first, @last come from the block's own input.
      if (path.parts[0] === 'root') record(path.parts.slice(1), written);
      return;
    }
    if (path.depth >= scopes) record(path.parts, written);
  };
  const visitExpression = (node: hbs.AST.Expression, scopes: number, written: boolean) => {
    if (node.type === 'PathExpression') visitPath(node as hbs.AST.PathExpression, scopes, written);
    else if (node.type === 'SubExpression') visitCall(node as hbs.AST.SubExpression, scopes, written);
  };
  const visitCall = (
    node: { path: hbs.AST.PathExpression | hbs.AST.Expression; params: hbs.AST.Expression[]; hash?: hbs.AST.Hash },
    scopes: number,
    written: boolean,
  ) => {
    const head = node.path.type === 'PathExpression' ? (node.path as hbs.AST.PathExpression) : undefined;
    const plain = node.params.length === 0 && !node.hash?.pairs.length;
    // A bare `{{domain}}` writes the value; `{{json x}}` and `{{concat a "-b"}}` pass their
    // arguments' text through. Anything else (a helper deciding on a value, a hash) is keyed.
    if (head && plain && !helpers.has(head.original)) return visitPath(head, scopes, written);
    const through = written && head !== undefined && verbatimHelpers.has(head.original) && !node.hash?.pairs.length;
    // A helper's name is resolved when the template compiles, never read from the context.
    if (!head || !helpers.has(head.original)) visitExpression(node.path, scopes, false);
    for (const param of node.params) visitExpression(param, scopes, through);
    for (const pair of node.hash?.pairs ?? []) visitExpression(pair.value, scopes, false);
  };
  const visitProgram = (program: hbs.AST.Program | undefined, scopes: number) => {
    for (const statement of program?.body ?? []) visitStatement(statement, scopes);
  };
  const visitStatement = (node: hbs.AST.Statement, scopes: number) => {
    switch (node.type) {
      case 'ContentStatement':
      case 'CommentStatement':
        return;
      case 'MustacheStatement':
        return visitCall(node as hbs.AST.MustacheStatement, scopes, true);
      case 'BlockStatement': {
        const block = node as hbs.AST.BlockStatement;
        const helper = block.path.type === 'PathExpression' ? (block.path as hbs.AST.PathExpression).original : undefined;
        if (!helper || (!SAME_CONTEXT_BLOCKS.has(helper) && !NEW_CONTEXT_BLOCKS.has(helper))) throw new UnboundedRead();
        for (const param of block.params) visitExpression(param, scopes, false);
        for (const pair of block.hash?.pairs ?? []) visitExpression(pair.value, scopes, false);
        visitProgram(block.program, NEW_CONTEXT_BLOCKS.has(helper) ? scopes + 1 : scopes);
        // `{{else}}` of each/with runs in the outer context.
        visitProgram(block.inverse, scopes);
        return;
      }
      default:
        // Partials, partial blocks, decorators: their reads are not in this tree.
        throw new UnboundedRead();
    }
  };
  try {
    visitProgram(ast, 0);
  } catch (e) {
    if (e instanceof UnboundedRead) return undefined;
    throw e;
  }
  // A path also read for a decision, or inside or around another read path (`domain`
  // and `domain.length`), is keyed: a marker in its place would change what the other read sees.
  const all = [...keyed.values(), ...verbatim.values()];
  const overlaps = (path: ContextPath) => all.some((other) => other !== path && (startsWith(other, path) || startsWith(path, other)));
  const onlyWritten: ContextPath[] = [];
  for (const [id, path] of verbatim) {
    if (keyed.has(id) || overlaps(path)) keyed.set(id, path);
    else onlyWritten.push(path);
  }
  return { keyed: [...keyed.values()], verbatim: onlyWritten };
}

const startsWith = (path: ContextPath, prefix: ContextPath): boolean =>
  prefix.length <= path.length && prefix.every((part, i) => path[i] === part);

/**
 * A string equal for two contexts exactly when every path holds the same value in
 * both: same types, same own keys in the same order (each iterates in that order),
 * a missing key distinct from any value. Strict mode treats a missing key as an
 * error, so presence is part of the key.
 */
export function inputKey(context: object, paths: readonly ContextPath[]): string {
  let key = '';
  for (const path of paths) {
    let value: unknown = context;
    let depth = 0;
    while (depth < path.length && value !== null && typeof value === 'object' && Object.hasOwn(value, path[depth]!)) {
      value = (value as Record<string, unknown>)[path[depth]!];
      depth++;
    }
    // Where the walk stopped short, what the rest of the path gives depends on the key
    // being missing from an object (or array), or on the primitive it stopped at (a
    // string's .length): not on the object's other keys.
    if (depth === path.length) key += encodeValue(value);
    else if (value !== null && typeof value === 'object') key += `~${depth}${Array.isArray(value) ? 'a' : 'o'}`;
    else key += `~${depth}:${encodeValue(value)}`;
    key += ';';
  }
  return key;
}

function encodeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      // Object.is tells -0 from 0 and NaN from null, which JSON would not.
      return Object.is(value, -0) ? 'n-0' : `n${String(value)}`;
    case 'boolean':
      return value ? 't' : 'f';
    case 'undefined':
      return 'u';
    case 'object': {
      if (value === null) return 'z';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) out += `${encodeValue(value[i])},`;
        return `${out}]`;
      }
      let out = '{';
      for (const key of Object.keys(value)) out += `${JSON.stringify(key)}:${encodeValue((value as Record<string, unknown>)[key])},`;
      return `${out}}`;
    }
    default:
      // Functions, symbols, bigints never come from fleet YAML; a unique key means "never reuse".
      return `!${Math.random()}`;
  }
}
