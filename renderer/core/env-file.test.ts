import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as dotenvParse } from 'dotenv';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvFileError } from './errors.js';
import {
  composeFlavourMatters,
  definedKeys,
  parseEnvText,
  patchEnvFile,
  patchEnvText,
  readEnvValues,
  type EnvFileView,
} from './env-file.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures/env', name), 'utf8');
const patch = (text: string, p: Record<string, string>) => patchEnvText(text, p, '.env');
const values = (view: EnvFileView) => Object.fromEntries(view.values);

function refusal(fn: () => unknown): EnvFileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(EnvFileError);
    return err as EnvFileError;
  }
  throw new Error('expected an EnvFileError');
}

describe('parseEnvText', () => {
  it('reads keys, values and every line a key is assigned on; the last occurrence wins', () => {
    const view = parseEnvText('# c\nA=1\n\nB = two words # note\nA=3\n', '.env');
    expect(values(view)).toEqual({ A: '3', B: 'two words' });
    expect(view.lines.get('A')).toEqual([2, 5]);
    expect(view.lines.get('B')).toEqual([4]);
  });

  it('reads export prefixes, YAML-style keys and both quote styles', () => {
    const view = parseEnvText("export A=1\nB: 2\nC='x # y'\nD=\"a\\\"b\\\\c\\n\"\n", '.env');
    expect(values(view)).toEqual({ A: '1', B: '2', C: 'x # y', D: 'a"b\\c\n' });
    expect(view.entries.map((e) => [e.key, e.exported, e.quote])).toEqual([
      ['A', true, ''],
      ['B', false, ''],
      ['C', false, "'"],
      ['D', false, '"'],
    ]);
  });

  it('keeps "#" without a space before it as part of a bare value, as compose does', () => {
    expect(values(parseEnvText('A=123#x\nB=1 #x\n', '.env'))).toEqual({ A: '123#x', B: '1' });
  });

  it('does not take a line inside a multi-line quoted value for a key', () => {
    const view = parseEnvText('A="first\nB=inside\nlast"\nC=3\n', '.env');
    expect(values(view)).toEqual({ A: 'first\nB=inside\nlast', C: '3' });
    expect(view.entries[0]).toMatchObject({ line: 1, endLine: 3 });
    expect(view.lines.get('C')).toEqual([4]);
  });

  it('reads CRLF files without the carriage returns and notes the line ending', () => {
    const view = parseEnvText('A=1\r\nB="2"\r\nC=\r\n', '.env');
    expect(values(view)).toEqual({ A: '1', B: '2', C: '' });
    expect(view.lineEnding).toBe('\r\n');
  });

  it('tolerates a BOM at the start', () => {
    const view = parseEnvText('\uFEFFA=1\nB=2\n', '.env');
    expect(values(view)).toEqual({ A: '1', B: '2' });
    expect(view.hasBom).toBe(true);
  });

  it('marks values compose would interpolate, and reads escaped dollars literally', () => {
    const view = parseEnvText('A=$B\nB="x$C"\nC=\'$D\'\nD="\\$E"\n', '.env');
    expect(view.entries.map((e) => e.interpolated)).toEqual([true, true, false, false]);
    expect(view.values.get('D')).toBe('$E');
  });

  it('counts a bare KEY line (taken from the shell by compose) as not defined', () => {
    expect(definedKeys('A=1\nFROM_SHELL\nEMPTY=\n', '.env')).toEqual(new Set(['A', 'EMPTY']));
  });

  it('rejects what compose rejects, naming the file and line', () => {
    const unterminated = refusal(() => parseEnvText('A=1\nB="open\n', 'hosts/linda/.env'));
    expect(unterminated).toMatchObject({ file: 'hosts/linda/.env', line: 2 });
    expect(unterminated.message).toContain('unterminated quoted value');
    expect(refusal(() => parseEnvText('A=1\n\nBAD LINE\n', '.env'))).toMatchObject({ line: 3 });
    expect(refusal(() => parseEnvText('A$B=1\n', '.env')).message).toContain('unexpected character "$"');
  });

  it('reads a 1 MB line', () => {
    const big = 'x'.repeat(1024 * 1024);
    const view = parseEnvText(`A=1\nBIG=${big}\nQ="${big}"\nC=3\n`, '.env');
    expect(view.values.get('BIG')).toHaveLength(big.length);
    expect(view.values.get('Q')).toHaveLength(big.length);
    expect(view.lines.get('C')).toEqual([4]);
  });
});

describe('patchEnvText', () => {
  it('changes only the listed values; comments, blank lines, spacing and inline comments stay', () => {
    expect(patch('# c\nA=1\n\nB = 2   # note\nC=3\n', { B: '20' }).text).toBe('# c\nA=1\n\nB = 20   # note\nC=3\n');
  });

  it('keeps export prefixes and YAML-style separators', () => {
    expect(patch('export  A=1\nB: 2\n', { A: 'x', B: 'y' }).text).toBe('export  A=x\nB: y\n');
  });

  it('keeps CRLF line endings, also for appended keys', () => {
    expect(patch('A=1\r\nB=2\r\n', { A: 'x', N: 'n' }).text).toBe(
      'A=x\r\nB=2\r\n# Added by fleet env-patch\r\nN=n\r\n',
    );
  });

  it('keeps a missing final newline, and adds one only before appended keys', () => {
    expect(patch('A=1\nB=2', { B: '3' }).text).toBe('A=1\nB=3');
    expect(patch('A=1', { N: 'n' }).text).toBe('A=1\n# Added by fleet env-patch\nN=n\n');
    expect(patch('A=1\r\nB=2', { N: 'n' }).text).toBe('A=1\r\nB=2\r\n# Added by fleet env-patch\r\nN=n\r\n');
  });

  it('patches the last occurrence of a duplicated key', () => {
    expect(patch('A=1\nB=x\nA=2\n', { A: '3' }).text).toBe('A=1\nB=x\nA=3\n');
  });

  it('replaces a multi-line value whole and leaves the look-alike line inside it alone', () => {
    const text = 'A="first\nB=inside\nlast"\nB=real\n';
    expect(patch(text, { B: 'new' }).text).toBe('A="first\nB=inside\nlast"\nB=new\n');
    expect(patch(text, { A: 'one' }).text).toBe('A="one"\nB=real\n');
  });

  it('keeps what follows a quoted value on its line', () => {
    expect(patch('A="x" # keep\n', { A: 'y' }).text).toBe('A="y" # keep\n');
    expect(patch("A='x'   \n", { A: 'y' }).text).toBe("A='y'   \n");
  });

  it('fills an empty value in place, before a CR', () => {
    expect(patch('A=\nB=2\n', { A: 'v' }).text).toBe('A=v\nB=2\n');
    expect(patch('A=\r\nB=2\r\n', { A: 'v' }).text).toBe('A=v\r\nB=2\r\n');
    expect(patch('A= \n', { A: 'v' }).text).toBe('A= v\n');
  });

  it('quotes an emptied value that an inline comment follows, or compose would read the comment', () => {
    expect(patch('A=x # note\n', { A: '' }).text).toBe('A="" # note\n');
    expect(patch('A=x  \n', { A: '' }).text).toBe('A=  \n');
  });

  describe('quoting', () => {
    it.each([
      ['a value with $ is single-quoted', 'A=1\n', 'p$ss', "A='p$ss'\n"],
      ['$ wins over an old double-quoted value', 'A="1"\n', '$x', "A='$x'\n"],
      ['an old single-quoted value keeps single quotes', "A='1'\n", 'two words', "A='two words'\n"],
      ['an old single-quoted value keeps single quotes even when bare would do', "A='1'\n", 'plain', "A='plain'\n"],
      ["single quotes give way to double when the value has '", "A='1'\n", "it's", 'A="it\'s"\n'],
      ['single quotes give way to double when the value ends with \\', "A='1'\n", 'C:\\', 'A="C:\\\\"\n'],
      ['an old double-quoted value keeps double quotes', 'A="1"\n', 'plain', 'A="plain"\n'],
      ['whitespace gets double quotes', 'A=1\n', 'two words', 'A="two words"\n'],
      ['a tab gets double quotes', 'A=1\n', 'a\tb', 'A="a\tb"\n'],
      ['# gets double quotes', 'A=1\n', 'a#b', 'A="a#b"\n'],
      ["' gets double quotes", 'A=1\n', "it's", 'A="it\'s"\n'],
      ['" and \\ are escaped inside double quotes', 'A=1\n', 'say "hi" \\o/', 'A="say \\"hi\\" \\\\o/"\n'],
      ['a plain value is bare', 'A="x"\nB=1\n', 'v2.10.3', 'A="x"\nB=v2.10.3\n'],
      ['an empty value is bare', 'A=1\n', '', 'A=\n'],
      ["$ and ' together: double quotes, $ escaped (compose-go reads \\$ as $)", 'A=1\n', "it's $5 off", 'A="it\'s \\$5 off"\n'],
      ['$ with a trailing backslash: double quotes', 'A=1\n', '$x\\', 'A="\\$x\\\\"\n'],
      ['$, \' and " together', 'A=1\n', `"it's" $HOME`, 'A="\\"it\'s\\" \\$HOME"\n'],
    ])('%s', (_name, text, value, expected) => {
      const key = expected.includes('B=') ? 'B' : 'A';
      const result = patch(text, { [key]: value });
      expect(result.text).toBe(expected);
      expect(readEnvValues(result.text, '.env', 'v2', { HOME: '/root', x: 'x' }).get(key)).toBe(value);
    });

    it.each([
      ['a line break', 'a\nb', 'line break'],
      ['a carriage return', 'a\rb', 'line break'],
      ['a lone surrogate', 'a\uD800b', 'lone UTF-16 surrogate'],
    ])('refuses %s, naming file and key', (_name, value, message) => {
      const text = 'A=1\nSECRET=keep\n';
      const err = refusal(() => patchEnvText(text, { SECRET: value }, 'hosts/linda/.env'));
      expect(err).toMatchObject({ file: 'hosts/linda/.env', key: 'SECRET', line: 2 });
      expect(err.message).toContain(message);
      expect(err.message).toContain('hosts/linda/.env');
    });
  });

  describe('for compose v1 (python-dotenv 0.21, checked against the binary in env-file.compose-v1.test.ts)', () => {
    const v1 = (text: string, p: Record<string, string>) => patchEnvText(text, p, '.env', 'v1');

    it.each([
      ["$ and ' together: single quotes, ' escaped, which compose-go reads back too", 'A=1\n', "it's $5 off", "A='it\\'s $5 off'\n"],
      ["$, ' and \\\\ together: double quotes, $ as it is (python-dotenv has no \\$; compose-go cannot read it)", 'A=1\n', "it's a\\\\b $5", 'A="it\'s a\\\\\\\\b $5"\n'],
      ['a value with $ is single-quoted, as for v2', 'A=1\n', 'p$ss', "A='p$ss'\n"],
      ['\\\\ with $: double quotes (single quotes would read \\\\ as \\)', 'A=1\n', 'a\\\\b$', 'A="a\\\\\\\\b$"\n'],
      ['$ with a trailing backslash: bare (a quoted value ending in \\ runs on)', 'A=1 # c\n', '$x\\', 'A=$x\\ # c\n'],
      ['a plain value is bare', 'A=1\n', 'v2.10.3', 'A=v2.10.3\n'],
      ['U+001C, which python strips from a bare value, gets quotes', 'A=1\n', 'x\u001c', 'A="x\u001c"\n'],
    ])('%s', (_name, text, value, expected) => {
      const result = v1(text, { A: value });
      expect(result.text).toBe(expected);
      expect(readEnvValues(result.text, '.env', 'v1', { HOME: '/root', x: 'x' }).get('A')).toBe(value);
    });

    it.each([
      ['${NAME}, which python-dotenv expands in every quoting', 'a${HOME}b', 'expands in every quoting'],
      ['${NAME:-default}', '${X:-y}', 'expands in every quoting'],
      ['a trailing backslash after a leading space', ' x\\', 'no quoting makes compose v1'],
    ])('refuses %s, naming file, line and key but never the value', (_name, value, message) => {
      const err = refusal(() => v1('A=1\nSECRET=keep\n', { SECRET: value }));
      expect(err).toMatchObject({ file: '.env', key: 'SECRET', line: 2 });
      expect(err.message).toContain(message);
      expect(err.message).not.toContain(value);
      // compose v2 holds each of them.
      expect(readEnvValues(patch('', { SECRET: value }).text, '.env', 'v2').get('SECRET')).toBe(value);
    });

    it('refuses to patch a line python-dotenv does not read as an assignment (YAML style)', () => {
      const err = refusal(() => v1('A: 1\n', { A: '2' }));
      expect(err).toMatchObject({ key: 'A', line: 1 });
      expect(err.message).toContain('would not read this line back');
    });

    it('says when the two composes need different bytes, so a host asks which it runs only then', () => {
      expect(composeFlavourMatters('A=1\n', { A: 'v2.10.3', B: 'two words', C: 'p$ss' }, '.env')).toBe(false);
      expect(composeFlavourMatters('A=1\n', { A: "it's $5 off" }, '.env')).toBe(true);
      expect(composeFlavourMatters('A=1\n', { A: '${HOME}' }, '.env')).toBe(true);
      expect(composeFlavourMatters('A: 1\n', { A: '2' }, '.env')).toBe(true);
      expect(composeFlavourMatters('A=1\n', { A: 'a\nb' }, '.env')).toBe(false);
    });

    it("takes a value as unchanged by python-dotenv's reading, not compose-go's", () => {
      // 'a\\b' is a\\b to compose-go and a\b to python-dotenv.
      expect(v1("A='a\\\\b'\n", { A: 'a\\b' })).toEqual({ text: "A='a\\\\b'\n", changed: [], added: [] });
      expect(patch("A='a\\\\b'\n", { A: 'a\\b' }).changed).toEqual(['A']);
    });
  });

  it('changes nothing for a value equal to the current one', () => {
    const text = 'A=1\nB="two words"\nC=\'$x\'\n';
    expect(patch(text, { A: '1', B: 'two words', C: '$x' })).toEqual({ text, changed: [], added: [] });
  });

  it('rewrites a value that only looks equal because compose would interpolate it', () => {
    expect(patch('A=$HOME\n', { A: '$HOME' })).toEqual({ text: "A='$HOME'\n", changed: ['A'], added: [] });
  });

  it('reports changed and added keys in patch order', () => {
    const result = patch('A=1\nB=2\n', { Z: 'z', B: '3', A: '1', Y: 'y' });
    expect(result).toEqual({
      text: 'A=1\nB=3\n# Added by fleet env-patch\nZ=z\nY=y\n',
      changed: ['B'],
      added: ['Z', 'Y'],
    });
  });

  it('writes the marker once: later patches append after the end without a second one', () => {
    const first = patch('A=1\n', { N1: 'x' }).text;
    const second = patch(first + 'OPERATOR=added-later\n', { N2: 'y' }).text;
    expect(second).toBe('A=1\n# Added by fleet env-patch\nN1=x\nOPERATOR=added-later\nN2=y\n');
  });

  it('starts an empty file with the marker', () => {
    expect(patch('', { A: '1', B: 'a b' }).text).toBe('# Added by fleet env-patch\nA=1\nB="a b"\n');
  });

  it('keeps a BOM', () => {
    expect(patch('\uFEFFA=1\n', { A: '2', N: 'n' }).text).toBe('\uFEFFA=2\n# Added by fleet env-patch\nN=n\n');
  });

  it.each(['1A', 'A-B', 'A B', 'A.B', '', 'É'])('refuses the key name %j', (key) => {
    const err = refusal(() => patchEnvText('A=1\n', { [key]: 'v' }, 'x/.env'));
    expect(err).toMatchObject({ file: 'x/.env', key });
    expect(err.message).toContain('not a valid variable name');
  });

  it('patches around a 1 MB line without touching it', () => {
    const big = 'y'.repeat(1024 * 1024);
    const text = `A=1\nBIG=${big}\nC=3\n`;
    expect(patch(text, { C: '4' }).text).toBe(`A=1\nBIG=${big}\nC=4\n`);
    expect(patch(text, { BIG: 'small' }).text).toBe('A=1\nBIG=small\nC=3\n');
  });

  it('patches the adopted-host fixture to exactly the expected file', () => {
    const result = patch(fixture('adopted.env'), {
      IMAGE_TAG: 'v2.10.3',
      SMTP_HOST: 'smtp.example.org',
      GREETING: 'hello',
      LOG_LEVEL: 'warn',
      FEATURE_FLAGS: 'search,export',
      SITE_TITLE: "Linda's shop",
    });
    expect(result.text).toBe(fixture('adopted.patched.env'));
    expect(result.changed).toEqual(['IMAGE_TAG', 'SMTP_HOST', 'LOG_LEVEL']);
    expect(result.added).toEqual(['FEATURE_FLAGS', 'SITE_TITLE']);
  });
});

describe('patchEnvFile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-env-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a missing file with mode 0600', async () => {
    const path = join(dir, '.env');
    expect(await patchEnvFile(path, { A: '1' })).toEqual({ changed: [], added: ['A'], written: true });
    expect(await readFile(path, 'utf8')).toBe('# Added by fleet env-patch\nA=1\n');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('creates nothing for an empty patch on a missing file', async () => {
    const path = join(dir, '.env');
    expect(await patchEnvFile(path, {})).toEqual({ changed: [], added: [], written: false });
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rewrites the file in place, keeping its mode and every other byte', async () => {
    const path = join(dir, '.env');
    await writeFile(path, '\uFEFF# c\r\nexport A = 1\r\nB=2');
    await chmod(path, 0o640);
    expect(await patchEnvFile(path, { A: '9' })).toEqual({ changed: ['A'], added: [], written: true });
    expect(await readFile(path, 'utf8')).toBe('\uFEFF# c\r\nexport A = 9\r\nB=2');
    expect((await stat(path)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['.env']);
  });

  it('does not rewrite the file when every value already matches', async () => {
    const path = join(dir, '.env');
    await writeFile(path, 'A=1\n');
    const before = await stat(path);
    expect(await patchEnvFile(path, { A: '1' })).toEqual({ changed: [], added: [], written: false });
    expect((await stat(path)).ino).toBe(before.ino);
  });

  it('leaves the file byte-identical when the patch is refused', async () => {
    const path = join(dir, '.env');
    const original = Buffer.from('# keep me\r\nA=1\nB="x"', 'utf8');
    await writeFile(path, original);
    await expect(patchEnvFile(path, { A: 'fine', B: 'two\nlines' })).rejects.toMatchObject({ file: path, key: 'B' });
    await expect(patchEnvFile(path, { A: 'fine', B: '${HOME}' }, 'v1')).rejects.toMatchObject({ file: path, key: 'B' });
    await expect(patchEnvFile(path, { 'BAD KEY': 'v' })).rejects.toBeInstanceOf(EnvFileError);
    expect(await readFile(path)).toEqual(original);
    expect(await readdir(dir)).toEqual(['.env']);
  });

  it('refuses a file that is not UTF-8 and leaves it alone', async () => {
    const path = join(dir, '.env');
    const latin1 = Buffer.from([0x41, 0x3d, 0xe9, 0x0a]); // A=é in Latin-1
    await writeFile(path, latin1);
    await expect(patchEnvFile(path, { B: '1' })).rejects.toThrow(/not valid UTF-8/);
    expect(await readFile(path)).toEqual(latin1);
  });

  it('refuses a file compose cannot read, naming the line', async () => {
    const path = join(dir, '.env');
    await writeFile(path, 'A=1\nB="open\n');
    await expect(patchEnvFile(path, { A: '2' })).rejects.toMatchObject({ file: path, line: 2 });
    expect(await readFile(path, 'utf8')).toBe('A=1\nB="open\n');
  });
});

// Conformance: the upstream parsers' own test vectors (fixtures/env/README.md).
interface ConformanceCase {
  name: string;
  parser: 'compose-go' | 'motdotla' | 'godotenv';
  input: string;
  expected?: Record<string, string>;
  error?: boolean;
  error_contains?: string;
  lookup_env?: Record<string, string>;
  agrees_with?: string[];
  differs?: Record<string, { result?: Record<string, string>; error?: string }>;
}

const cases = JSON.parse(fixture('dotenv-parse.json')) as ConformanceCase[];

/**
 * Cases where Flotilla deliberately reads differently from compose-go:
 * a bare `KEY` line takes its value from the shell environment, which the
 * agent never hands to compose, so the file does not define it.
 */
const INHERITED_FROM_SHELL = new Set(['cg-fixture-inherited-multi', 'cg-fixture-inherited-single']);

/** What compose-go gives for a case: its own expectation, or the recorded compose-go result for another parser's case. */
function composeGoOutcome(c: ConformanceCase): { result?: Record<string, string>; error?: boolean } | undefined {
  if (c.parser === 'compose-go' || c.agrees_with?.includes('compose-go')) {
    return c.error ? { error: true } : { result: c.expected! };
  }
  const other = c.differs?.['compose-go'];
  if (!other) return undefined;
  return other.error !== undefined ? { error: true } : { result: other.result! };
}

describe('conformance with compose-go (fixtures/env/dotenv-parse.json)', () => {
  const checkable = cases.filter((c) => composeGoOutcome(c) && !INHERITED_FROM_SHELL.has(c.name));

  it('covers the data set: every case is checked or listed as skipped', () => {
    const unchecked = cases.filter((c) => !checkable.includes(c)).map((c) => c.name);
    expect(unchecked.sort()).toEqual([...INHERITED_FROM_SHELL].sort());
  });

  it.each(checkable.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const outcome = composeGoOutcome(c)!;
    if (outcome.error) {
      const err = refusal(() => parseEnvText(c.input, 'case.env'));
      if (c.error_contains) {
        const [, line, detail] = /^(?:line (\d+): )?(.*)$/s.exec(c.error_contains)!;
        expect(err.detail).toContain(detail);
        if (line) expect(err.line).toBe(Number(line));
      }
      return;
    }
    const view = parseEnvText(c.input, 'case.env');
    const expected = outcome.result!;
    // Keys always agree. Values agree except where compose-go expands variables,
    // which Flotilla reports unexpanded (and flags as interpolated).
    expect([...view.values.keys()].sort()).toEqual(Object.keys(expected).sort());
    const last = new Map(view.entries.map((e) => [e.key, e]));
    for (const [key, entry] of last) {
      if (!entry.interpolated) expect({ key, value: entry.value }).toEqual({ key, value: expected[key] });
    }
    if (!c.lookup_env && ![...last.values()].some((e) => e.interpolated)) expect(values(view)).toEqual(expected);
  });

  it.each(checkable.filter((c) => !composeGoOutcome(c)!.error).map((c) => [c.name, c] as const))(
    'readEnvValues(v2) gives compose-go\'s values, variables expanded: %s',
    (_name, c) => {
      expect(Object.fromEntries(readEnvValues(c.input, 'case.env', 'v2', c.lookup_env ?? {}))).toEqual(composeGoOutcome(c)!.result);
    },
  );
});

describe('conformance of the dotenv package with motdotla cases', () => {
  // The agent reads its own config file with dotenv; its behaviour on these cases is pinned here.
  it.each(cases.filter((c) => c.parser === 'motdotla').map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(dotenvParse(c.input)).toEqual(c.expected);
  });
});
