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

/** Every import cycle among `files` (Tarjan's strongly connected components of more than one file). */
function importCycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

async function importGraph(dirs: string[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const dir of dirs) {
    for (const file of await sourceFiles(dir)) {
      graph.set(file, (await projectImports(file)).map((t) => t.replace(/\.js$/, '.ts')));
    }
  }
  return graph;
}

describe('the shape of the renderer', () => {
  it('has no import cycle in renderer/ or agent/ (type imports count: a cycle is a cycle to a reader)', async () => {
    const graph = await importGraph(['renderer', 'agent']);
    expect(graph.size).toBeGreaterThan(60);
    expect(importCycles(graph)).toEqual([]);
  });

  it('finds a cycle when there is one (the check itself works)', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    expect(importCycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
  });

  it('commands/ are wiring: only main.ts imports them, and they import no other command', async () => {
    const graph = await importGraph(['renderer', 'agent', 'scripts']);
    const importers = [...graph].filter(([file, targets]) => file !== 'renderer/main.ts' && targets.some((t) => t.startsWith('renderer/commands/')));
    expect(importers.map(([file]) => file)).toEqual([]);
  });

  it('isomorphic-git is used only by renderer/core/ and renderer/repo.ts', async () => {
    const users: string[] = [];
    for (const dir of ['renderer', 'agent']) {
      for (const file of await sourceFiles(dir)) {
        if (file.startsWith('renderer/core/') || file === 'renderer/repo.ts') continue;
        if (/from 'isomorphic-git/.test(await readFile(join(ROOT, file), 'utf8'))) users.push(file);
      }
    }
    expect(users).toEqual([]);
  });
});
