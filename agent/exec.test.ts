import { describe, expect, it } from 'vitest';
import { runCommand } from './exec.js';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('runCommand', () => {
  it('returns exit code, stdout and stderr, and feeds input on stdin', async () => {
    const result = await runCommand(['sh', '-c', 'cat; echo oops >&2; exit 3'], { env, input: 'hello\n' });
    expect(result).toEqual({ code: 3, stdout: 'hello\n', stderr: 'oops\n', timedOut: false });
  });

  it('gives the child exactly the environment it is handed, nothing inherited', async () => {
    process.env.FLOTILLA_EXEC_TEST_SECRET = 'leaked';
    try {
      const result = await runCommand(['sh', '-c', 'echo "[$FLOTILLA_EXEC_TEST_SECRET][$ONLY_THIS]"'], {
        env: { ...env, ONLY_THIS: 'given' },
      });
      expect(result.stdout).toBe('[][given]\n');
    } finally {
      delete process.env.FLOTILLA_EXEC_TEST_SECRET;
    }
  });

  it('runs in the given directory', async () => {
    const result = await runCommand(['pwd'], { env, cwd: '/' });
    expect(result.stdout).toBe('/\n');
  });

  it('kills a child that outlives its timeout and says so', async () => {
    const result = await runCommand(['sleep', '30'], { env, timeoutMs: 200 });
    expect(result.timedOut).toBe(true);
    expect(result.code).toBe(128 + 15);
  });

  it('keeps the tail of output beyond the cap', async () => {
    const result = await runCommand(['sh', '-c', 'seq 1 20000; echo LAST'], { env, maxOutputBytes: 1000 });
    expect(result.stdout.startsWith('[output truncated]\n')).toBe(true);
    expect(result.stdout.endsWith('20000\nLAST\n')).toBe(true);
    expect(Buffer.byteLength(result.stdout)).toBeLessThanOrEqual(1000 + '[output truncated]\n'.length);
  });

  it('reports a program that does not exist with code 127', async () => {
    const result = await runCommand(['flotilla-no-such-program'], { env });
    expect(result.code).toBe(127);
    expect(result.stderr).toContain('flotilla-no-such-program: command not found');
  });
});
