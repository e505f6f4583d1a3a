// Through the CLI: a user's mistake in a render input ends in a typed error that names
// it and its exit code, never "internal error … please report it" (exit 70).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { copyFleetCheckout, runFlotilla, tempDirs } from '../../test/support/cli.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const tempDir = tempDirs('flotilla-cli-inputs-');
const repoCopy = async (): Promise<string> => copyFleetCheckout(repoRoot, await tempDir());
const run = (args: string[]) => runFlotilla(args, repoRoot);

describe('render and check inputs a user gets wrong', () => {
  it('render --out under a file: exit 2 naming the file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'some-file'), 'x\n');
    const r = await run(['--root', repoRoot, 'render', '--tenant', 'pia', '--out', join(dir, 'some-file/sub')]);
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe(`flotilla: --out: cannot make ${join(dir, 'some-file/sub')}: ${join(dir, 'some-file')} is a file, not a folder\n`);
  });

  it('check with imageTag: 2.10 says to quote it', async () => {
    const root = await repoCopy();
    await writeFile(join(root, 'fleet/tenants/pia.yaml'), 'mode: managed\nimageTag: 2.10\n');
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('fleet/tenants/pia.yaml:2: imageTag: must be string, not number 2.1 (YAML reads 2.10 as number 2.1); quote it to keep it text: imageTag: "2.10"');
  });

  it('check with a tenant in two waves names it and both waves', async () => {
    const root = await repoCopy();
    // bnkops is the canary by name; give it the labels the early wave selects.
    await writeFile(join(root, 'fleet/tenants/bnkops.yaml'), 'mode: managed\nlabels:\n  ring: early\n');
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/fleet\/fleet\.yaml:\d+: waves\[1\]\.selector: tenant "bnkops" is in two waves: "canary" \(by name, line \d+\) and "early"/);
  });

  it('check with a block left open names the line it opens at', async () => {
    const root = await repoCopy();
    await writeFile(join(root, 'templates/nginx/conf.d/api.conf.hbs'), '# api\nserver_name {{#if domain}};\n\n');
    const r = await run(['--root', root, 'check']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('templates/nginx/conf.d/api.conf.hbs:2: {{#if}} opened here is never closed');
  });
});
