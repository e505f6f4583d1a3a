import { describe, expect, it } from 'vitest';
import { createAgentLog, parseLogFormat, redactSecrets } from './log.js';

const NOW = () => new Date('2030-01-02T03:04:05.678Z');

function capture(format: 'text' | 'json', secrets: string[] = []) {
  const lines: string[] = [];
  const log = createAgentLog({ format, tenant: 'linda', write: (s) => void lines.push(s), secrets, now: NOW });
  return { log, lines };
}

describe('agent log', () => {
  it('writes one JSON object per line with --log-format json', () => {
    const { log, lines } = capture('json');
    log('fetch: tenants/linda at 1a2b3c4');
    log.error('up failed: rolled back');
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n'))).toBe(true);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, time: '2030-01-02T03:04:05.678Z', tenant: 'linda', msg: 'fetch: tenants/linda at 1a2b3c4' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 50, msg: 'up failed: rolled back' });
  });

  it('writes a plain line a person reads in text mode', () => {
    const { log, lines } = capture('text');
    log('apply: swapped 3 files');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: \[linda\] apply: swapped 3 files\n$/);
    expect(lines[0]).not.toContain('{');
    expect(lines[0]).not.toContain('\u001b['); // no colour unless asked (not a TTY)
  });

  it('labels each level, colours the label only on a TTY, and keeps structured fields', () => {
    const { log, lines } = capture('text');
    log.warn('poll: git host unreachable, retrying in 30 s');
    log.error('up failed: rolled back');
    log.logger.info({ attempt: 2 }, 'retry');
    expect(lines[0]).toMatch(/\] WARN: \[linda\] poll: git host unreachable, retrying in 30 s\n$/);
    expect(lines[1]).toMatch(/\] ERROR: \[linda\] up failed: rolled back\n$/);
    expect(lines[2]).toMatch(/\] INFO: \[linda\] retry \{"attempt":2\}\n$/);
    const coloured: string[] = [];
    createAgentLog({ format: 'text', tenant: 'linda', write: (s) => void coloured.push(s), color: true, now: NOW }).error('boom');
    expect(coloured[0]).toContain('\u001b[31mERROR\u001b[39m: [linda] boom');
  });

  it("prints the time in the host's local zone", () => {
    const { log, lines } = capture('text');
    log('x');
    const t = NOW();
    const local = `${t.getFullYear()}-${String(t.getMonth() + 1).padStart(2, '0')}-${String(t.getDate()).padStart(2, '0')} ${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}:05.678`;
    expect(lines[0]!.startsWith(`[${local}] INFO:`)).toBe(true);
  });

  it('never prints a token, in either format', () => {
    for (const format of ['text', 'json'] as const) {
      const { log, lines } = capture(format, ['s3cret-git-token', 'ghs_statusTokenValue1234']);
      log('fetch https://x-access-token:s3cret-git-token@git.example/fleet.git failed: 401');
      log('POST statuses with authorization: Bearer ghs_statusTokenValue1234');
      log('remote said token=abc123xyz and ghp_0123456789abcdefABCDEF');
      const out = lines.join('');
      for (const leaked of ['s3cret-git-token', 'ghs_statusTokenValue1234', 'abc123xyz', 'ghp_0123456789abcdefABCDEF', 'x-access-token'])
        expect(out).not.toContain(leaked);
      expect(out).toContain('https://***@git.example/fleet.git failed: 401');
    }
  });

  it('passes every line through the host’s redaction as it is written, so a value the host holds now is masked now', () => {
    const held = new Set<string>();
    for (const format of ['text', 'json'] as const) {
      const lines: string[] = [];
      const log = createAgentLog({
        format,
        tenant: 'linda',
        write: (s) => void lines.push(s),
        now: NOW,
        redact: (text) => [...held].reduce((t, v) => t.split(v).join('***'), text),
      });
      held.clear();
      log('config failed: cpus: invalid value Zm9vYmFyYmF6cXV4');
      held.add('Zm9vYmFyYmF6cXV4');
      log.error('config failed: cpus: invalid value Zm9vYmFyYmF6cXV4');
      expect(lines[0]).toContain('invalid value Zm9vYmFyYmF6cXV4');
      expect(lines[1]).toContain('invalid value ***');
      expect(lines[1]).not.toContain('Zm9vYmFyYmF6cXV4');
    }
  });

  it('redacts secrets in structured fields too', () => {
    const { log, lines } = capture('json');
    log.logger.info({ token: 'plain-field-token', nested: { authorization: 'Bearer zzz' } }, 'sent');
    expect(lines[0]).not.toContain('plain-field-token');
    expect(lines[0]).not.toContain('zzz');
    void log;
  });

  it('keeps text that only looks near a secret', () => {
    expect(redactSecrets('applied 1a2b3c4 (3 files)', ['abc'])).toBe('applied 1a2b3c4 (3 files)');
  });

  it('takes text or json as the format and names the option otherwise', () => {
    expect(parseLogFormat(undefined)).toBe('text');
    expect(parseLogFormat('json')).toBe('json');
    expect(() => parseLogFormat('xml')).toThrow(/--log-format: must be text or json/);
  });
});
