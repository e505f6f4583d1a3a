// Property tests: the scanner against the reference interpolator.
// "Required" is checked semantically: a name is required exactly when, in every
// environment of the other names where the value interpolates with the name set, leaving
// it unset makes compose fail or fall back to a blank with its "variable is not set"
// warning. Nothing of the scanner's own reasoning is reused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  InvalidInterpolationError,
  MissingRequiredVariableError,
  evaluateComposeText,
  interpolate,
  scanInterpolation,
} from './compose-vars.js';

type Operator = ':?' | '?' | ':-' | '-' | ':+' | '+';
type Part =
  | { kind: 'text'; text: string }
  | { kind: 'escaped' }
  | { kind: 'named'; name: string }
  | { kind: 'braced'; name: string }
  | { kind: 'operator'; name: string; operator: Operator; argument: Part[] };

// Text without `$`, braces, newlines or name characters, so each part renders to
// exactly the expression it stands for (`$A` followed by text never grows into `$AB`).
const text = fc.string({ unit: fc.constantFrom(' ', '-', ':', '?', '+', '/', '.', '=', '@', ',', '"', "'", '|'), minLength: 1, maxLength: 4 });
const operator = fc.constantFrom<Operator>(':?', '?', ':-', '-', ':+', '+');

function templateArbitrary(name: fc.Arbitrary<string>): fc.Arbitrary<Part[]> {
  const { parts } = fc.letrec<{ parts: Part[]; part: Part }>((tie) => ({
    parts: fc.array(tie('part'), { maxLength: 4 }),
    part: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      text.map((t): Part => ({ kind: 'text', text: t })),
      fc.constant<Part>({ kind: 'escaped' }),
      name.map((n): Part => ({ kind: 'named', name: n })),
      name.map((n): Part => ({ kind: 'braced', name: n })),
      fc
        .record({ name, operator, argument: tie('parts') as fc.Arbitrary<Part[]> })
        .map((r): Part => ({ kind: 'operator', ...r })),
    ),
  }));
  return parts;
}

function render(parts: Part[]): string {
  return parts
    .map((p) => {
      switch (p.kind) {
        case 'text':
          return p.text;
        case 'escaped':
          return '$$';
        case 'named':
          return `$${p.name}`;
        case 'braced':
          return `\${${p.name}}`;
        case 'operator':
          return `\${${p.name}${p.operator}${render(p.argument)}}`;
      }
    })
    .join('');
}

/** Gives every variable occurrence its own name, in order, so no name appears twice. */
function withDistinctNames(parts: Part[]): Part[] {
  let next = 0;
  const rename = (ps: Part[]): Part[] =>
    ps.map((p) => {
      if (p.kind === 'text' || p.kind === 'escaped') return p;
      const name = `V${next++}`;
      return p.kind === 'operator' ? { ...p, name, argument: rename(p.argument) } : { ...p, name };
    });
  return rename(parts);
}

function namesIn(parts: Part[]): Set<string> {
  const names = new Set<string>();
  const walk = (ps: Part[]): void => {
    for (const p of ps) {
      if (p.kind === 'text' || p.kind === 'escaped') continue;
      names.add(p.name);
      if (p.kind === 'operator') walk(p.argument);
    }
  };
  walk(parts);
  return names;
}

type Env = Record<string, string | undefined>;

/** Every environment giving each name one of: unset, empty, a value. */
function* environments(names: string[]): Generator<Env> {
  const [first, ...others] = names;
  if (first === undefined) {
    yield {};
    return;
  }
  for (const env of environments(others)) {
    yield { ...env };
    yield { ...env, [first]: '' };
    yield { ...env, [first]: 'value' };
  }
}

function outcome(template: string, env: Env, name: string): { failed: boolean; warned: boolean } {
  let warned = false;
  try {
    interpolate(template, env, (n) => {
      if (n === name) warned = true;
    });
    return { failed: false, warned };
  } catch {
    return { failed: true, warned };
  }
}

/** Required as compose behaves: the name's absence always hurts, whatever the other names hold. */
function requiredByBehaviour(template: string, names: string[], name: string): boolean {
  const others = names.filter((n) => n !== name);
  for (const env of environments(others)) {
    if (outcome(template, { ...env, [name]: 'x' }, name).failed) continue;
    const without = outcome(template, env, name);
    if (!without.failed && !without.warned) return false;
  }
  return true;
}

const sortedUnique = (names: Iterable<string>): string[] => [...new Set(names)].sort();

describe('scanner and reference interpolator', () => {
  it('agree on which names are required (each name used once)', () => {
    fc.assert(
      fc.property(
        templateArbitrary(fc.constant('N')).map(withDistinctNames).filter((ps) => namesIn(ps).size <= 5),
        (parts) => {
          const template = render(parts);
          const names = sortedUnique(namesIn(parts));
          const scan = scanInterpolation(template);
          expect(scan.references).toEqual(names);
          const required = names.filter((n) => requiredByBehaviour(template, names, n));
          expect(scan.required).toEqual(required);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('with names repeated, every required name is needed and all references are found', () => {
    fc.assert(
      fc.property(templateArbitrary(fc.constantFrom('A', 'B', 'c_1')), (parts) => {
        const template = render(parts);
        const names = sortedUnique(namesIn(parts));
        const scan = scanInterpolation(template);
        expect(scan.references).toEqual(names);
        const allSet = Object.fromEntries(names.map((n) => [n, 'value']));
        for (const name of scan.required) {
          expect(requiredByBehaviour(template, names, name)).toBe(true);
        }
        // With every name set nothing fails and nothing is blanked.
        const warned: string[] = [];
        interpolate(template, allSet, (n) => warned.push(n));
        expect(warned).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });
});

/** Strings heavy in the characters that matter to interpolation, plus anything at all. */
const arbitraryValue = fc.oneof(
  fc.string({
    unit: fc.constantFrom('$', '{', '}', ':', '-', '+', '?', '=', 'A', 'b', '_', '1', ' ', '\n', '"', '['),
    maxLength: 24,
  }),
  fc.string({ unit: 'binary', maxLength: 24 }),
);

describe('scanner on arbitrary input', () => {
  it('returns a scan or throws InvalidInterpolationError, nothing else', () => {
    fc.assert(
      fc.property(arbitraryValue, (value) => {
        try {
          const scan = scanInterpolation(value);
          expect(scan.required.every((n) => scan.references.includes(n))).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(InvalidInterpolationError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts only values the interpolator accepts, and finds every name it looks up', () => {
    fc.assert(
      fc.property(arbitraryValue, fc.constantFrom<'unset' | 'empty' | 'set'>('unset', 'empty', 'set'), (value, state) => {
        let scan;
        try {
          scan = scanInterpolation(value);
        } catch {
          return;
        }
        const looked = new Set<string>();
        const values: Env = {};
        if (state !== 'unset') for (const n of scan.references) values[n] = state === 'set' ? 'value' : '';
        const env = new Proxy(values, {
          getOwnPropertyDescriptor(target, key) {
            if (typeof key === 'string') looked.add(key);
            return Reflect.getOwnPropertyDescriptor(target, key);
          },
        });
        try {
          interpolate(value, env);
        } catch (e) {
          expect(e).toBeInstanceOf(MissingRequiredVariableError);
          expect(state).not.toBe('set');
          expect(scan.references).toContain((e as MissingRequiredVariableError).variable);
        }
        for (const n of looked) expect(scan.references).toContain(n);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('evaluateComposeText', () => {
  type State = 'unset' | 'empty' | 'set';
  const state = fc.constantFrom<State>('unset', 'empty', 'set');
  const envOf = (states: Record<string, State>, setValue: string): Env =>
    Object.fromEntries(
      Object.entries(states)
        .filter(([, s]) => s !== 'unset')
        .map(([n, s]) => [n, s === 'set' ? setValue : '']),
    );

  it('finds in a document what the interpolator reports for its value, whatever the non-empty values, call after call', () => {
    fc.assert(
      fc.property(
        templateArbitrary(fc.constantFrom('A', 'B', 'C')),
        fc.array(fc.record({ A: state, B: state, C: state }), { minLength: 1, maxLength: 4 }),
        (parts, envs) => {
          const value = render(parts);
          const doc = JSON.stringify({ services: { app: { image: value, command: ['run', value] } } });
          for (const states of envs) {
            const env = envOf(states, 'x');
            const reported = new Set<string>();
            interpolate(value, env, (n) => reported.add(n), (n) => reported.add(n));
            const expected = sortedUnique(reported);
            expect(evaluateComposeText(doc, 'compose.yaml', env).missing).toEqual(expected);
            // A value that looks like an expression is still only a value.
            expect(evaluateComposeText(doc, 'compose.yaml', envOf(states, '${C:?}$B')).missing).toEqual(expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
