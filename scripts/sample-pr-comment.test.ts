import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SAMPLE_FILE, readmeWithSample, sampleComment } from './sample-pr-comment.js';

const root = resolve(import.meta.dirname, '..');

describe('the sample PR comment in the README', () => {
  it('is current: regenerating it from the example fleet gives the committed bytes', async () => {
    const comment = await sampleComment(root);
    expect(await readFile(join(root, SAMPLE_FILE), 'utf8'), 'run: npx tsx scripts/sample-pr-comment.ts').toBe(comment);
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    expect(readmeWithSample(readme, comment), 'run: npx tsx scripts/sample-pr-comment.ts').toBe(readme);
  });

  it('shows what a reviewer needs: only the changed tenants, the new tag, and no secret value', async () => {
    const comment = await sampleComment(root);
    expect(comment).toContain('pia');
    expect(comment).toContain('v2.11.0');
    expect(comment).toMatch(/linda/);
    expect(comment.length).toBeLessThan(65_536);
  });
});
