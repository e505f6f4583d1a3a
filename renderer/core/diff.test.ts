import { describe, expect, it } from 'vitest';
import { fileChanges } from './diff.js';

const tree = (entries: Record<string, string | undefined>) => new Map(Object.entries(entries));

describe('fileChanges', () => {
  it('classifies each path and sorts by path', () => {
    const changes = fileChanges(
      tree({ 'z.conf': 'z\n', 'compose.yml': 'image: app:v1\n', 'gone.conf': 'old\n', 'same.txt': 'same\n' }),
      tree({ 'z.conf': 'z\n', 'compose.yml': 'image: app:v2\n', 'new/file.conf': 'hello\n', 'same.txt': 'same\n' }),
    );
    expect(changes.map((c) => [c.path, c.status])).toEqual([
      ['compose.yml', 'modified'],
      ['gone.conf', 'deleted'],
      ['new/file.conf', 'created'],
      ['same.txt', 'unchanged'],
      ['z.conf', 'unchanged'],
    ]);
  });

  it('gives a unified diff with a/ b/ headers and byte sizes', () => {
    const [change] = fileChanges(tree({ 'env.txt': 'TAG=v1\nNAME=é\n' }), tree({ 'env.txt': 'TAG=v2\nNAME=é\n' }));
    expect(change).toEqual({
      path: 'env.txt',
      status: 'modified',
      sizeBefore: 15,
      sizeAfter: 15,
      diff: '--- a/env.txt\n+++ b/env.txt\n@@ -1,2 +1,2 @@\n-TAG=v1\n+TAG=v2\n NAME=é\n',
    });
  });

  it('diffs created and deleted files against /dev/null and omits the missing size', () => {
    const changes = fileChanges(tree({ old: 'x\n' }), tree({ fresh: 'y\n' }));
    expect(changes[0]).toMatchObject({ path: 'fresh', status: 'created', sizeAfter: 2 });
    expect(changes[0]!.sizeBefore).toBeUndefined();
    expect(changes[0]!.diff).toBe('--- /dev/null\n+++ b/fresh\n@@ -0,0 +1,1 @@\n+y\n');
    expect(changes[1]).toMatchObject({ path: 'old', status: 'deleted', sizeBefore: 2 });
    expect(changes[1]!.diff).toBe('--- a/old\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x\n');
  });

  it('lists nothing for a path absent on both sides and no diff for unchanged files', () => {
    const changes = fileChanges(tree({ ghost: undefined, same: 's' }), tree({ ghost: undefined, same: 's' }));
    expect(changes).toEqual([{ path: 'same', status: 'unchanged', sizeBefore: 1, sizeAfter: 1 }]);
  });

  it('honours the context option', () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const after = before.replace('line 10\n', 'line ten\n');
    const [wide] = fileChanges(tree({ f: before }), tree({ f: after }));
    const [narrow] = fileChanges(tree({ f: before }), tree({ f: after }), { context: 0 });
    expect(wide!.diff).toContain('@@ -8,7 +8,7 @@');
    expect(narrow!.diff).toBe('--- a/f\n+++ b/f\n@@ -11,1 +11,1 @@\n-line 10\n+line ten\n');
  });

  it('cuts a long diff at a line end and marks it truncated', () => {
    const before = Array.from({ length: 500 }, (_, i) => `old line ${i}`).join('\n') + '\n';
    const after = Array.from({ length: 500 }, (_, i) => `new line ${i}`).join('\n') + '\n';
    const [change] = fileChanges(tree({ big: before }), tree({ big: after }), { maxDiffChars: 1000 });
    expect(change!.truncated).toBe(true);
    expect(change!.diff!.length).toBeLessThanOrEqual(1000);
    expect(change!.diff!.endsWith('\n')).toBe(true);
    expect(change!.diff!.startsWith('--- a/big\n+++ b/big\n')).toBe(true);
  });

  it('keeps a short diff whole', () => {
    const [change] = fileChanges(tree({ f: 'a\n' }), tree({ f: 'b\n' }), { maxDiffChars: 1000 });
    expect(change!.truncated).toBeUndefined();
  });

  it('gives sizes only, marked truncated, when a file changed too much to diff', () => {
    const before = Array.from({ length: 3_000 }, (_, i) => `a${i}`).join('\n');
    const after = Array.from({ length: 3_000 }, (_, i) => `b${i}`).join('\n');
    const [change] = fileChanges(tree({ huge: before }), tree({ huge: after }));
    expect(change).toMatchObject({ path: 'huge', status: 'modified', truncated: true });
    expect(change!.diff).toBeUndefined();
    expect(change!.sizeBefore).toBe(Buffer.byteLength(before));
  });

  it('still diffs a large created file, cut to maxDiffChars', () => {
    const after = Array.from({ length: 3_000 }, (_, i) => `b${i}`).join('\n') + '\n';
    const [change] = fileChanges(tree({}), tree({ big: after }), { maxDiffChars: 500 });
    expect(change).toMatchObject({ path: 'big', status: 'created', truncated: true });
    expect(change!.diff).toMatch(/^--- \/dev\/null\n\+\+\+ b\/big\n@@ -0,0 \+1,3000 @@\n\+b0\n\+b1\n/);
  });
});
