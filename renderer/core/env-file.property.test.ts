// Property tests of the .env patcher over generated files. The generator
// builds each file from pieces it knows the meaning of (fixed text, and value
// slots with their decoded value), so the expectations below come from the
// generator, not from the parser under test.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADDED_KEYS_MARKER, parseEnvText, patchEnvText, readEnvValues } from './env-file.js';
import { EnvFileError } from './errors.js';

// Modest by default so the suite stays fast; raise it to hunt: FLOTILLA_PROPERTY_RUNS=20000.
const RUNS = Number(process.env.FLOTILLA_PROPERTY_RUNS ?? 200);

type Eol = '\n' | '\r\n';
/** Fixed text, or the written form of one assignment's value. */
type Piece = { fixed: string } | { key: string; raw: string; decoded: string };

interface GeneratedFile {
  text: string;
  pieces: Piece[];
  /** What compose reads: the last assignment of each key. */
  map: Map<string, string>;
  hasMarker: boolean;
}

const PATCHABLE_KEYS = ['A', 'B', 'DB_URL', 'LOG_LEVEL', '_X', 'exportY'];
const FILE_ONLY_KEYS = ['dotted.key', 'dash-key'];
const NEW_KEYS = ['NEW_1', 'NEW_2', 'Z9'];

const CHARS = ['a', 'Z', '0', '_', ' ', '\t', '#', '=', ':', "'", '"', '\\', '$', '{', '}', 'é', '😀', '\u00a0', '-', '/'];
const text = (chars: string[], maxLength = 8) =>
  fc.array(fc.constantFrom(...chars), { maxLength }).map((a) => a.join(''));

// No whitespace or quotes; "#" and "$" included (`A=1#2` is "1#2" to compose, `A=$B` is interpolated).
const bareValue = text(['a', 'Z', '0', '_', '.', '/', ':', ',', '@', '+', '=', '-', '#', '$', '{', '}']);

function assignment(eol: Eol): fc.Arbitrary<Piece[]> {
  const indent = fc.constantFrom('', '  ', '\t');
  const exportPrefix = fc.constantFrom('', '', 'export ', 'export\t');
  const key = fc.constantFrom(...PATCHABLE_KEYS, ...PATCHABLE_KEYS, ...FILE_ONLY_KEYS);
  const separator = fc.constantFrom('=', '=', ' = ', '= ', ' =', ': ');
  const multiLineChars = [...CHARS, eol];

  const bare = fc.record({
    decoded: bareValue,
    trailing: fc.constantFrom('', '  ', ' # note', ' #'),
  }).map(({ decoded, trailing }) => ({
    decoded,
    raw: decoded,
    // An empty bare value followed by " # note" is the value "# note" to compose.
    trailing: decoded === '' ? '' : trailing,
  }));
  const single = fc.record({
    decoded: text(multiLineChars.filter((c) => c !== "'")).filter((v) => !v.endsWith('\\')),
    trailing: fc.constantFrom('', ' # c', '  '),
  }).map(({ decoded, trailing }) => ({ decoded, raw: `'${decoded}'`, trailing }));
  const double = fc.record({
    decoded: text(multiLineChars),
    trailing: fc.constantFrom('', ' # c', '  ', '#c'),
  }).map(({ decoded, trailing }) => ({
    decoded,
    raw: `"${decoded.replace(/[\\"]/g, (c) => `\\${c}`)}"`,
    trailing,
  }));

  return fc
    .record({ indent, exportPrefix, key, separator, value: fc.oneof(bare, single, double) })
    .map(({ indent, exportPrefix, key, separator, value }) => [
      { fixed: `${indent}${exportPrefix}${key}${separator}` },
      { key, raw: value.raw, decoded: value.decoded },
      { fixed: value.trailing },
    ]);
}

const otherLine: fc.Arbitrary<Piece[]> = fc
  .oneof(
    fc.constantFrom('', '  '),
    fc.record({ indent: fc.constantFrom('', ' '), body: text(CHARS, 12) }).map(({ indent, body }) => `${indent}#${body}`),
    fc.constantFrom(
      '# A=commented-out',
      'FROM_SHELL', // compose takes this one from the shell; the file defines nothing
      ADDED_KEYS_MARKER,
    ),
  )
  .map((fixed): Piece[] => [{ fixed }]);

const envFile: fc.Arbitrary<GeneratedFile> = fc
  .record({
    eol: fc.constantFrom<Eol>('\n', '\r\n'),
    bom: fc.boolean(),
    finalNewline: fc.boolean(),
  })
  .chain(({ eol, bom, finalNewline }) =>
    fc.array(fc.oneof({ weight: 3, arbitrary: assignment(eol) }, { weight: 2, arbitrary: otherLine }), { maxLength: 12 })
      .map((lines) => {
        const pieces: Piece[] = bom ? [{ fixed: '\uFEFF' }] : [];
        lines.forEach((line, i) => {
          pieces.push(...line);
          const last = i === lines.length - 1;
          if (!last || finalNewline) pieces.push({ fixed: eol });
        });
        const map = new Map<string, string>();
        for (const piece of pieces) if ('key' in piece) map.set(piece.key, piece.decoded);
        const textOut = pieces.map((p) => ('fixed' in p ? p.fixed : p.raw)).join('');
        const hasMarker = pieces.some((p) => 'fixed' in p && p.fixed === ADDED_KEYS_MARKER);
        return { text: textOut, pieces, map, hasMarker };
      }),
  );

// Every one-line value: compose-go can hold each of them.
const writableValue = text(CHARS, 10);
const patchArb: fc.Arbitrary<Record<string, string>> = fc
  .uniqueArray(fc.tuple(fc.constantFrom(...PATCHABLE_KEYS, ...NEW_KEYS), writableValue), {
    selector: ([key]) => key,
    maxLength: 5,
  })
  .map((entries) => Object.fromEntries(entries));

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** True when `slot` is one complete written value: nothing of the surrounding text was taken into it. */
function isWholeValue(slot: string): boolean {
  const view = parseEnvText(`X=${slot}`, 'slot');
  const entry = view.entries[0];
  return view.entries.length === 1 && entry !== undefined && entry.valueStart === 2 && entry.valueEnd === slot.length + 2;
}

describe('patchEnvText properties', () => {
  it('parses generated files to the values they were built from', () => {
    fc.assert(
      fc.property(envFile, (file) => {
        expect(Object.fromEntries(parseEnvText(file.text, '.env').values)).toEqual(Object.fromEntries(file.map));
      }),
      { numRuns: RUNS },
    );
  });

  it('is idempotent: patching the result again changes nothing', () => {
    fc.assert(
      fc.property(envFile, patchArb, (file, patch) => {
        const once = patchEnvText(file.text, patch, '.env');
        const twice = patchEnvText(once.text, patch, '.env');
        expect(twice).toEqual({ text: once.text, changed: [], added: [] });
      }),
      { numRuns: RUNS },
    );
  });

  it('re-parsing the result gives the old values with the patched keys replaced', () => {
    fc.assert(
      fc.property(envFile, patchArb, (file, patch) => {
        const result = patchEnvText(file.text, patch, '.env');
        const expected = new Map(file.map);
        for (const [key, value] of Object.entries(patch)) expected.set(key, value);
        expect(Object.fromEntries(parseEnvText(result.text, '.env').values)).toEqual(Object.fromEntries(expected));
        expect(result.added).toEqual(Object.keys(patch).filter((k) => !file.map.has(k)));
      }),
      { numRuns: RUNS },
    );
  });

  it('touches no byte outside the patched values, and appends new keys after one marker', () => {
    fc.assert(
      fc.property(envFile, patchArb, (file, patch) => {
        const result = patchEnvText(file.text, patch, '.env');
        // The last assignment of each patched key that the file defines is the one slot that may change.
        const lastIndex = new Map<string, number>();
        file.pieces.forEach((p, i) => {
          if ('key' in p) lastIndex.set(p.key, i);
        });
        const slots = new Set(
          Object.keys(patch)
            .filter((k) => lastIndex.has(k))
            .map((k) => lastIndex.get(k)!),
        );
        let pattern = '^';
        file.pieces.forEach((p, i) => {
          if (slots.has(i)) pattern += '([^\\r\\n]*)';
          else pattern += escapeRegExp('fixed' in p ? p.fixed : p.raw);
        });
        const eol = /^[^\n]*\r\n/.test(file.text) ? '\r\n' : '\n';
        const added = Object.keys(patch).filter((k) => !file.map.has(k));
        if (added.length > 0) {
          const hasContent = file.text.replace(/^\uFEFF/, '') !== '';
          if (hasContent && !file.text.endsWith('\n')) pattern += escapeRegExp(eol);
          if (!file.hasMarker) pattern += escapeRegExp(ADDED_KEYS_MARKER + eol);
          for (const key of added) pattern += `${key}=([^\\r\\n]*)${escapeRegExp(eol)}`;
        }
        const match = new RegExp(`${pattern}$`).exec(result.text);
        expect(match, `unexpected bytes in:\n${JSON.stringify(result.text)}`).not.toBeNull();
        for (const slot of match!.slice(1)) expect(isWholeValue(slot!), `slot ${JSON.stringify(slot)}`).toBe(true);
        if (file.hasMarker || added.length > 0) {
          expect(result.text.split(ADDED_KEYS_MARKER).length - 1).toBe(
            file.text.split(ADDED_KEYS_MARKER).length - 1 + (file.hasMarker ? 0 : 1),
          );
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('compose-go reads every patched value back exactly, variables expanded, in any environment', () => {
    fc.assert(
      fc.property(envFile, patchArb, (file, patch) => {
        const result = patchEnvText(file.text, patch, '.env');
        const last = new Map(parseEnvText(result.text, '.env').entries.map((e) => [e.key, e]));
        for (const [key, value] of Object.entries(patch)) {
          // Not interpolated: what compose-go expands in it is only `$$`, whatever the shell holds.
          expect({ key, value: last.get(key)?.value, interpolated: last.get(key)?.interpolated }).toEqual({ key, value, interpolated: false });
        }
        // The whole reading, expansion included, on a file holding only the patch (the generated
        // files may hold values compose-go refuses to expand, which would stop it first).
        const alone = patchEnvText('', patch, '.env').text;
        expect(Object.fromEntries(readEnvValues(alone, '.env', 'v2', { HOME: '/root', A: 'x' }))).toEqual(patch);
      }),
      { numRuns: RUNS },
    );
  });

  it('for compose v1, python-dotenv reads every value the patcher accepts back exactly; it refuses only ${...} and a trailing \\ it cannot write', () => {
    fc.assert(
      fc.property(envFile, patchArb, (file, patch) => {
        let result;
        try {
          result = patchEnvText(file.text, patch, '.env', 'v1');
        } catch (err) {
          expect(err).toBeInstanceOf(EnvFileError);
          const { key, detail } = err as EnvFileError;
          const value = patch[key!]!;
          // A line python-dotenv does not take for an assignment (`A: x`, a value it reads
          // otherwise) is named as such; anything else is a value v1 cannot hold.
          if (!detail.includes('would not read this line back')) {
            expect(/\$\{[^}:]*(?::-[^}]*)?\}/.test(value) || value.endsWith('\\'), JSON.stringify(value)).toBe(true);
          }
          return;
        }
        const reading = readEnvValues(result.text, '.env', 'v1');
        for (const [key, value] of Object.entries(patch)) expect({ key, value: reading.get(key) }).toEqual({ key, value });
        expect(patchEnvText(result.text, patch, '.env', 'v1')).toEqual({ text: result.text, changed: [], added: [] });
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses every value with a line break, whatever the file', () => {
    fc.assert(
      fc.property(
        envFile,
        fc.constantFrom(...PATCHABLE_KEYS, ...NEW_KEYS),
        writableValue,
        fc.constantFrom('\n', '\r', '\r\n'),
        (file, key, value, lineBreak) => {
          expect(() => patchEnvText(file.text, { [key]: value + lineBreak + value }, '.env')).toThrow(EnvFileError);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
