// Names in a manifest that no file system should be asked to create: not UTF-8 (a
// replacement character or a lone surrogate, which is what a non-UTF-8 byte in a git tree
// name decodes to) and control characters. The agent and the renderer share this check.
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../../renderer/core/errors.js';
import { checkManagedPath, parseManifest, serializeManifest, type Manifest } from '../../renderer/core/manifest.js';

const manifest = (path: string): Manifest => ({
  schemaVersion: 1,
  tenant: 'acme',
  mode: 'managed',
  imageTag: 'v1',
  source: { repo: 'acme/fleet', commit: 'a'.repeat(40) },
  files: [{ path, sha256: 'b'.repeat(64), mode: 0o644 }],
  envPatch: {},
  requiredVariables: [],
  secrets: [],
});

describe('managed file names', () => {
  it.each([
    ['a replacement character (a non-UTF-8 byte decoded)', 'caf\uFFFD.conf', 'path is not valid UTF-8'],
    ['a lone surrogate', 'a\uD800b.conf', 'path is not valid UTF-8'],
    ['a control character', 'ctl\u0001.conf', 'control character in path'],
    ['a newline', 'new\nline.conf', 'control character in path'],
  ])('refuses %s, naming the path', (_name, path, message) => {
    expect(() => checkManagedPath(path)).toThrow(ManifestError);
    expect(() => checkManagedPath(path)).toThrow(message);
    expect(() => parseManifest(serializeManifest(manifest(path)))).toThrow(ManifestError);
  });

  it('accepts UTF-8 names beyond ASCII', () => {
    expect(() => checkManagedPath('café/naïve.conf')).not.toThrow();
  });
});
