// Both CLIs end here: the same error exits the same way from `flotilla` and `flotilla-agent`.
import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { runCli } from '../renderer/main.js';
import { runAgentCli } from '../agent/main.js';
import { SettingError } from '../renderer/core/errors.js';
import { EXIT_INTERNAL, reportCliError } from '../renderer/core/exit.js';

describe('reportCliError', () => {
  it('prints a FlotillaError as program: message and exits with its code', () => {
    let err = '';
    expect(reportCliError('flotilla', new SettingError('--out', 'cannot write /x'), (s) => void (err += s))).toBe(2);
    expect(err).toBe('flotilla: --out: cannot write /x\n');
  });

  it('leaves usage errors to commander, which printed them, with its exit code', () => {
    let err = '';
    expect(reportCliError('flotilla', new CommanderError(1, 'commander.unknownOption', 'x'), (s) => void (err += s))).toBe(1);
    expect(err).toBe('');
  });

  it('reports a bug with its trace, exit 70, with host values hidden even there', () => {
    let err = '';
    const code = reportCliError('flotilla-agent', new TypeError('boom near hunter2-secret'), (s) => void (err += s), (t) => t.replaceAll('hunter2-secret', '***'));
    expect(code).toBe(EXIT_INTERNAL);
    expect(err).toMatch(/^flotilla-agent: internal error \(a bug in flotilla-agent; please report it with this trace\)\nTypeError: boom near \*\*\*\n\s+at /);
    expect(err).not.toContain('hunter2');
  });

  it('is what both programs use: the same setting mistake exits 2 from each, named the same way', async () => {
    let rendererErr = '';
    const rendererCode = await runCli(['comment', '--pr', 'x'], { stdout: () => undefined, stderr: (s) => void (rendererErr += s), cwd: '.', env: {} });
    expect(rendererCode).toBe(2);
    expect(rendererErr).toMatch(/^flotilla: --pr: /);
    let agentErr = '';
    const agentCode = await runAgentCli(['once'], { stdout: () => undefined, stderr: (s) => void (agentErr += s), env: {} });
    expect(agentCode).toBe(2);
    expect(agentErr).toMatch(/^flotilla-agent: FLOTILLA_/);
  });
});
