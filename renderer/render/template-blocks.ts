// Where a template's blocks open and close. Handlebars reports a block left open as a
// parse error at the end of the file ("Expecting 'OPEN_ENDBLOCK', got 'EOF'"), which
// is not where the mistake is; this walks the template with Handlebars' own lexer (so
// comments, raw blocks and `\{{` escapes read as Handlebars reads them) and pairs each
// `{{#name}}` / `{{^name}}` / `{{#> name}}` with its `{{/name}}`.
import Handlebars from 'handlebars';

interface Lexer {
  setInput(text: string): void;
  lex(): number | string;
  yytext: string;
  yylloc: { first_line: number };
}

interface ParserInternals {
  lexer: Lexer;
  terminals_: Record<number, string>;
}

/** A block that does not pair up: `line` is where the block opens (or the stray close is). */
export interface BlockProblem {
  line: number;
  detail: string;
}

const OPENS = new Set(['OPEN_BLOCK', 'OPEN_INVERSE', 'OPEN_PARTIAL_BLOCK']);
const NAME_PARTS = new Set(['ID', 'SEP', 'DATA']);

interface Opened {
  shown: string;
  name: string;
  line: number;
}

/**
 * The first block that does not pair up in `text`: a close naming another block than
 * the one open, a close with no block open, or a block still open at the end. Undefined
 * when every block pairs up, or when the lexer itself cannot read the text (the parser's
 * own error says more then).
 */
export function findBlockProblem(text: string): BlockProblem | undefined {
  const { lexer, terminals_: names } = (Handlebars as unknown as { Parser: ParserInternals }).Parser;
  const open: Opened[] = [];
  try {
    lexer.setInput(text);
    let pending = lexer.lex();
    const next = (): string | undefined => {
      const kind = typeof pending === 'number' ? names[pending] : pending;
      return kind;
    };
    /** Reads the block name that follows an open or close (`if`, `each`, `a.b`, `@root.x`). */
    const readName = (): string => {
      // A path: ID (SEP ID)*, maybe after DATA (`@`); the next ID after a whole path is a parameter.
      let name = '';
      let wantId = true;
      pending = lexer.lex();
      for (let kind = next(); kind !== undefined && NAME_PARTS.has(kind) && (kind === 'ID') === wantId; kind = next()) {
        name += lexer.yytext;
        wantId = kind !== 'ID';
        pending = lexer.lex();
      }
      return name;
    };
    for (let guard = 0; guard <= text.length + 1; guard++) {
      const kind = next();
      if (kind === undefined || kind === 'EOF') break;
      if (OPENS.has(kind)) {
        const sigil = lexer.yytext.replace(/^\{\{~?/, '');
        const line = lexer.yylloc.first_line;
        const name = readName();
        open.push({ shown: `{{${sigil}${name}}}`, name, line });
        continue;
      }
      if (kind === 'OPEN_ENDBLOCK') {
        const line = lexer.yylloc.first_line;
        const name = readName();
        const top = open.pop();
        if (!top) return { line, detail: `{{/${name}}} closes no open block` };
        if (top.name !== name)
          return { line: top.line, detail: `${top.shown} opened here is closed by {{/${name}}} at line ${line}; close it with {{/${top.name}}} first` };
        continue;
      }
      pending = lexer.lex();
    }
  } catch {
    return undefined;
  }
  const innermost = open.pop();
  if (!innermost) return undefined;
  const others = open.length ? `; ${open.map((o) => `${o.shown} at line ${o.line}`).join(', ')} ${open.length === 1 ? 'is' : 'are'} not closed either` : '';
  return { line: innermost.line, detail: `${innermost.shown} opened here is never closed (add {{/${innermost.name}}} where it ends)${others}` };
}

/** Whether a Handlebars parse error is about blocks that do not pair up (reported at the close or at the end). */
export function isBlockParseError(message: string): boolean {
  return /got 'EOF'|doesn't match|got 'OPEN_ENDBLOCK'/.test(message);
}
