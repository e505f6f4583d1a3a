// Runs the loopback git server on its own for the demo:
//   npx tsx scripts/git-server.ts --root DIR --port N [--repo fleet.git]... [--token T]
// Prints the base URL on stdout, then serves until SIGTERM or SIGINT.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startGitServer } from '../test/support/git-server.js';

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    port: { type: 'string', default: '0' },
    repo: { type: 'string', multiple: true, default: [] },
    token: { type: 'string' },
  },
});
if (!values.root) {
  process.stderr.write('usage: git-server.ts --root DIR [--port N] [--repo NAME.git]... [--token T]\n');
  process.exit(2);
}
const port = Number.parseInt(values.port, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`--port: ${values.port} is not a port number\n`);
  process.exit(2);
}
const root = resolve(values.root);
await mkdir(root, { recursive: true });
const server = await startGitServer({ root, port, ...(values.token !== undefined ? { token: values.token } : {}) });
for (const repo of values.repo) {
  if (!existsSync(join(root, repo))) await server.createBareRepo(repo);
}
process.stdout.write(`${server.url('')}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
