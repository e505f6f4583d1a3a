// The line between the two programs: the agent ships to hosts and shares only the
// contract in renderer/core/ with the renderer; renderer/core/ imports nothing else of
// the project. Read from the source files' own import statements (tests may use more).
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The project files a source file imports (static and dynamic), as paths from the repo root. */
async function projectImports(file: string): Promise<string[]> {
  const text = await readFile(join(ROOT, file), 'utf8');
  const specifiers = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)));
}

describe('what each part may import', () => {
  it('agent/ imports only agent/ and renderer/core/ of the project', async () => {
    const files = await sourceFiles('agent');
    expect(files.length).toBeGreaterThan(20);
    const crossings: string[] = [];
    for (const file of files) {
      for (const target of await projectImports(file)) {
        if (!target.startsWith('agent/') && !target.startsWith('renderer/core/')) crossings.push(`${file} -> ${target}`);
      }
    }
    expect(crossings).toEqual([]);
  });

  it('renderer/core/ imports nothing of the project outside itself', async () => {
    const files = await sourceFiles('renderer/core');
    expect(files.length).toBeGreaterThan(10);
    const crossings: string[] = [];
    for (const file of files) {
      for (const target of await projectImports(file)) if (!target.startsWith('renderer/core/')) crossings.push(`${file} -> ${target}`);
    }
    expect(crossings).toEqual([]);
  });

  it('sees an import that crosses the line (the check itself works)', async () => {
    expect(await projectImports('agent/main.ts')).toContain('renderer/core/errors.js');
    expect((await projectImports('renderer/render/render.ts')).some((t) => t === 'renderer/fleet/fleet.js')).toBe(true);
  });
});
