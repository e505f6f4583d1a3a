import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS, defaultAgentCommand } from './daemon-node-flags.js';
import { renderUnit } from './install.js';

const here = dirname(fileURLToPath(import.meta.url));

describe('daemon node flags', () => {
  it('are in the unit install writes by default', () => {
    const unit = renderUnit({ tenant: 'acme', command: defaultAgentCommand('/usr/bin/node', '/opt/flotilla/dist/agent/main.js'), envFile: '/etc/flotilla/acme.env' });
    expect(unit).toContain(
      'ExecStart=/usr/bin/node --v8-pool-size=1 --max-semi-space-size=1 /opt/flotilla/dist/agent/main.js run --settings /etc/flotilla/acme.env\n',
    );
  });

  it("are in the agent container image's entrypoint", async () => {
    const dockerfile = await readFile(join(here, '..', 'docker', 'agent.Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ENTRYPOINT ${JSON.stringify(['node', ...DAEMON_NODE_FLAGS, '/opt/flotilla/dist/agent/main.js'])}`);
  });

  it('are flags this Node accepts', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [...DAEMON_NODE_FLAGS, '-e', 'process.stdout.write("ok")']);
    expect(stdout).toBe('ok');
  });
});
