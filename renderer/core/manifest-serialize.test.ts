// serializeManifest writes the manifest JSON by hand for speed; these tests hold it to
// the definition of its bytes: envPatch sorted by key, then JSON.stringify with a
// two-space indent and a final newline. Every tenant branch's manifest hash depends on it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseManifest, serializeManifest, sha256, type Manifest } from './manifest.js';

function reference(manifest: unknown): string {
  const m = manifest as Manifest;
  const env = Object.fromEntries(Object.entries(m.envPatch).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${JSON.stringify({ ...m, envPatch: env }, null, 2)}\n`;
}

// Any text, including quotes, backslashes, control characters, astral and lone surrogates.
const text = fc.string({ unit: 'binary', maxLength: 12 });
const anyText = fc.oneof(text, fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\u2028', '\ud800', '😀', 'a'), maxLength: 6 }));
const file = fc.record({ path: anyText, sha256: fc.constantFrom(sha256('a'), sha256('b')), mode: fc.constantFrom(0o644, 0o755) });
const manifestArbitrary = fc.record({
  schemaVersion: fc.constant(1 as const),
  tenant: anyText,
  mode: fc.constantFrom('managed' as const, 'adopted' as const),
  imageTag: anyText,
  source: fc.record({ repo: anyText, commit: anyText }),
  files: fc.array(file, { maxLength: 4 }),
  envPatch: fc.dictionary(fc.oneof(anyText, fc.constantFrom('10', '2', 'A', '_b', '4294967295')), anyText, { maxKeys: 5 }),
  requiredVariables: fc.array(anyText, { maxLength: 4 }),
  secrets: fc.array(anyText, { maxLength: 4 }),
});

describe('serializeManifest', () => {
  it('writes exactly the bytes of sorted-envPatch JSON.stringify(m, null, 2) plus a newline', () => {
    fc.assert(
      fc.property(manifestArbitrary, (m) => {
        expect(serializeManifest(m)).toBe(reference(m));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps to the definition for manifests of another shape (extra keys, other key order)', () => {
    const base: Manifest = {
      schemaVersion: 1,
      tenant: 'linda',
      mode: 'adopted',
      imageTag: 'v2.10.3',
      source: { repo: 'acme/fleet', commit: 'c'.repeat(40) },
      files: [{ path: 'docker-compose.yml', sha256: sha256('x'), mode: 0o644 }],
      envPatch: { B: '2', A: '1' },
      requiredVariables: ['A'],
      secrets: [],
    };
    const { tenant, ...rest } = base;
    const reordered = { ...rest, tenant } as unknown as Manifest; // tenant last
    const extra = { ...base, note: 'kept' } as unknown as Manifest;
    const withUndefined = { ...base, envPatch: { A: undefined, B: '2' } } as unknown as Manifest;
    const fileExtra = { ...base, files: [{ mode: 0o644, path: 'a', sha256: sha256('y') }] } as unknown as Manifest;
    const sparse = { ...base, secrets: [, 'X'] } as unknown as Manifest; // eslint-disable-line no-sparse-arrays
    for (const m of [base, reordered, extra, withUndefined, fileExtra, sparse]) expect(serializeManifest(m)).toBe(reference(m));
  });

  it('round-trips through parseManifest', () => {
    const m: Manifest = {
      schemaVersion: 1,
      tenant: 'bnkops',
      mode: 'managed',
      imageTag: 'v2.10.3',
      source: { repo: 'http://127.0.0.1/fleet.git', commit: 'a'.repeat(40) },
      files: [
        { path: 'docker-compose.yml', sha256: sha256('compose'), mode: 0o644 },
        { path: 'scripts/health.sh', sha256: sha256('sh'), mode: 0o755 },
      ],
      envPatch: { TZ: 'America/Edmonton', DOMAIN: 'bnkops.example' },
      requiredVariables: ['DOMAIN', 'JWT_SECRET'],
      secrets: ['JWT_SECRET'],
    };
    const text = serializeManifest(m);
    expect(Object.keys(JSON.parse(text).envPatch)).toEqual(['DOMAIN', 'TZ']);
    expect(parseManifest(text)).toEqual(m);
  });
});
