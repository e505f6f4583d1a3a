// Whose fault a failure before the swap is, from what compose and the engine print.
// The texts are docker's own (docker-compose 1.29 on the test run's engine prints them).
import { describe, expect, it } from 'vitest';
import { ComposeStepError, GitError, SettingError } from '../renderer/core/errors.js';
import { hostFaultOf } from './host-fault.js';

const pull = (tail: string) => new ComposeStepError('compose pull', tail);

describe('hostFaultOf', () => {
  it.each([
    ['the registry refuses connections', 'Get "http://127.0.0.1:36119/v2/": dial tcp 127.0.0.1:36119: connect: connection refused', 'registry unreachable'],
    ['the registry answers 503', 'received unexpected HTTP status: 503 Service Unavailable', 'registry unreachable'],
    ['the registry times out', 'Get "https://registry.example/v2/": net/http: TLS handshake timeout', 'registry unreachable'],
    ['the registry is rate limited', 'toomanyrequests: You have reached your pull rate limit.', 'registry unreachable'],
    ['the disk is full', 'write /var/lib/docker/tmp/GetImageBlob123: no space left on device', 'disk full'],
  ])('is the host’s when %s', (_what, tail, reason) => {
    expect(hostFaultOf('pull', pull(tail))).toBe(reason);
  });

  it.each([
    ['the tag was never pushed', 'manifest for 127.0.0.1:5000/flotilla-test/app:v9 not found: manifest unknown: manifest unknown'],
    ['the repository does not exist', 'pull access denied for flotilla-test/nope, repository does not exist or may require \'docker login\''],
    ['the port is in the image name of a missing tag', 'manifest for 127.0.0.1:5003/app:v9 not found: manifest unknown'],
  ])('is the commit’s when %s', (_what, tail) => {
    expect(hostFaultOf('pull', pull(tail))).toBeUndefined();
  });

  it('reads a failed fetch, a setting and a full disk as the host’s, and a bad compose file as the commit’s', () => {
    expect(hostFaultOf('fetch', new GitError('fetch', 'http://127.0.0.1:9/fleet.git', 'connect ECONNREFUSED'))).toBe('git host unreachable');
    expect(hostFaultOf('verify', new GitError('fetch history of tenants/acme', 'http://127.0.0.1:9/fleet.git', 'connect ECONNREFUSED'))).toBe('git host unreachable');
    expect(hostFaultOf('verify', new GitError('read tree /', '/state/repo.git', 'The filepath ".." contains unsafe character sequences'))).toBeUndefined();
    expect(hostFaultOf('config', new SettingError('FLOTILLA_COMPOSE', 'docker-compose: not found'))).toBe('agent setting FLOTILLA_COMPOSE');
    expect(hostFaultOf('stage', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }))).toBe('disk full');
    expect(hostFaultOf('config', new ComposeStepError('compose config', 'ERROR: The Compose file is invalid because: services.app.cpus contains an invalid type'))).toBeUndefined();
  });
});
