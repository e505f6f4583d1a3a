// A loopback git server: the real `git http-backend` run as CGI behind a small
// Node HTTP server on 127.0.0.1. Tests, the demo and the benchmarks use it so
// that every git byte goes through the same smart-HTTP code GitHub-like hosts run,
// including protocol v2 (the Git-Protocol header is passed through).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface PathStats {
  requests: number;
  /** Bytes the server received for this path (request line, headers and body). */
  bytesIn: number;
  /** Bytes the server sent for this path (status line, headers and body). */
  bytesOut: number;
}

export interface GitServerStats extends PathStats {
  /** Keyed by `METHOD /path?query`, e.g. `GET /fleet.git/info/refs?service=git-upload-pack`. */
  byPath: Record<string, PathStats>;
}

export interface GitRequestInfo {
  method: string;
  /** Path below the server root, e.g. `/fleet.git/git-receive-pack`. */
  path: string;
  query: string;
}

/**
 * A `beforeRequest` hook that runs an armed action once, during the next receive-pack
 * POST: after the pusher read the refs, before its push lands (a push racing ours).
 */
export function raceBeforeNextPush(): {
  beforeRequest: (request: GitRequestInfo) => Promise<void>;
  arm: (action: () => Promise<void>) => void;
  /** Whether the armed action ran. */
  raced: () => boolean;
} {
  let race: (() => Promise<void>) | undefined;
  return {
    beforeRequest: async (request) => {
      if (request.method === 'POST' && request.path.endsWith('/git-receive-pack') && race) {
        const run = race;
        race = undefined;
        await run();
      }
    },
    arm: (action) => {
      race = action;
    },
    raced: () => race === undefined,
  };
}

export interface GitServerOptions {
  /** Folder holding the bare repos; a temp dir (removed on stop) when omitted. */
  root?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /** When set, every request must carry HTTP basic auth whose password (or username) is this token. */
  token?: string;
  /**
   * Awaited before each request reaches git. Tests use it to create races
   * deterministically, e.g. move a branch between a client's ref discovery and its push.
   */
  beforeRequest?: (request: GitRequestInfo) => Promise<void> | void;
}

export interface GitServer {
  /** Clone URL of a repo below root, e.g. url('fleet.git'). */
  url(repo: string): string;
  root: string;
  port: number;
  /** Creates a bare repo (default branch main, pushes allowed) and returns its path. */
  createBareRepo(name: string): Promise<string>;
  stats(): GitServerStats;
  resetStats(): void;
  stop(): Promise<void>;
}

function emptyStats(): GitServerStats {
  return { requests: 0, bytesIn: 0, bytesOut: 0, byPath: {} };
}

function authorized(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (!match?.[1]) return false;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const username = colon === -1 ? decoded : decoded.slice(0, colon);
  const password = colon === -1 ? '' : decoded.slice(colon + 1);
  // GitHub accepts a token as the password (any user name) or as the user name.
  return password === token || (password === '' && username === token);
}

/** Splits CGI output into its header block and the first bytes of the body. */
function splitCgiHeaders(buffer: Buffer): { headers: string; body: Buffer } | null {
  const crlf = buffer.indexOf('\r\n\r\n');
  const lf = buffer.indexOf('\n\n');
  if (crlf !== -1 && (lf === -1 || crlf < lf)) {
    return { headers: buffer.subarray(0, crlf).toString('latin1'), body: buffer.subarray(crlf + 4) };
  }
  if (lf !== -1) return { headers: buffer.subarray(0, lf).toString('latin1'), body: buffer.subarray(lf + 2) };
  return null;
}

/**
 * Like GitHub, a repo whose HEAD names a branch that does not exist gets HEAD moved
 * to a pushed branch. Without this, a repo holding only tenant branches advertises no
 * HEAD, and isomorphic-git's fetch fails with "Could not find HEAD".
 */
async function pointHeadAtExistingBranch(repoDir: string): Promise<void> {
  try {
    await execFileAsync('git', ['--git-dir', repoDir, 'rev-parse', '--quiet', '--verify', 'HEAD']);
  } catch {
    try {
      const { stdout } = await execFileAsync('git', [
        '--git-dir',
        repoDir,
        'for-each-ref',
        '--count=1',
        '--format=%(refname)',
        'refs/heads/',
      ]);
      const first = stdout.trim();
      if (first) await execFileAsync('git', ['--git-dir', repoDir, 'symbolic-ref', 'HEAD', first]);
    } catch {
      // not a repo (the push failed anyway): nothing to fix
    }
  }
}

export async function startGitServer(options: GitServerOptions = {}): Promise<GitServer> {
  const ownsRoot = options.root === undefined;
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'flotilla-git-server-')));
  const children = new Set<ChildProcess>();
  let stats = emptyStats();
  // Bytes already attributed per keep-alive socket, so each request gets only its own share.
  const socketSeen = new WeakMap<Socket, { read: number; written: number }>();

  const record = (key: string, socket: Socket) => {
    const seen = socketSeen.get(socket) ?? { read: 0, written: 0 };
    const bytesIn = socket.bytesRead - seen.read;
    const bytesOut = socket.bytesWritten - seen.written;
    socketSeen.set(socket, { read: socket.bytesRead, written: socket.bytesWritten });
    const entry = (stats.byPath[key] ??= { requests: 0, bytesIn: 0, bytesOut: 0 });
    entry.requests += 1;
    entry.bytesIn += bytesIn;
    entry.bytesOut += bytesOut;
    stats.requests += 1;
    stats.bytesIn += bytesIn;
    stats.bytesOut += bytesOut;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const parsed = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';
    const key = `${method} ${parsed.pathname}${parsed.search}`;
    const socket = req.socket;
    res.on('finish', () => record(key, socket));

    if (options.token !== undefined && !authorized(req, options.token)) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="flotilla"', 'Content-Type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    if (parsed.pathname.split('/').includes('..')) {
      res.writeHead(400).end();
      return;
    }
    await options.beforeRequest?.({ method, path: parsed.pathname, query: parsed.search.replace(/^\?/, '') });

    const gitProtocol = req.headers['git-protocol'];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: decodeURIComponent(parsed.pathname),
      QUERY_STRING: parsed.search.replace(/^\?/, ''),
      REQUEST_METHOD: method,
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: socket.remoteAddress ?? '127.0.0.1',
      // Keep the user's and system git config out of the server.
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: root,
    };
    if (options.token !== undefined) env.REMOTE_USER = 'flotilla';
    if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
    if (req.headers['content-encoding'] !== undefined) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
    if (typeof gitProtocol === 'string') {
      env.GIT_PROTOCOL = gitProtocol;
      env.HTTP_GIT_PROTOCOL = gitProtocol;
    }

    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', (err) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`git http-backend failed to start: ${err.message}\n`);
    });
    child.stdin.on('error', () => {
      // git may close stdin early (e.g. on an error response); the response still goes out.
    });
    req.pipe(child.stdin);

    let head: Buffer = Buffer.alloc(0);
    let headersDone = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const split = splitCgiHeaders(head);
      if (!split) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of split.headers.split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon === -1) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 200;
        else headers[name] = value;
      }
      res.writeHead(status, headers);
      if (split.body.length > 0) res.write(split.body);
    });
    child.on('close', (code) => {
      children.delete(child);
      if (!headersDone) {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`git http-backend exited ${String(code)}: ${stderr}\n`);
        return;
      }
      if (method === 'POST' && parsed.pathname.endsWith('/git-receive-pack')) {
        const repoDir = join(root, decodeURIComponent(parsed.pathname).replace(/\/git-receive-pack$/, ''));
        pointHeadAtExistingBranch(repoDir).finally(() => res.end());
        return;
      }
      res.end();
    });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('git server has no TCP address');
  const port = address.port;

  return {
    root,
    port,
    url: (repo: string) => `http://127.0.0.1:${port}/${repo.replace(/^\/+/, '')}`,
    async createBareRepo(name: string) {
      const path = join(root, name);
      await execFileAsync('git', ['init', '--quiet', '--bare', '--initial-branch=main', path]);
      await execFileAsync('git', ['-C', path, 'config', 'http.receivepack', 'true']);
      return path;
    },
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats();
    },
    async stop() {
      for (const child of children) child.kill('SIGTERM');
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownsRoot) await rm(root, { recursive: true, force: true });
    },
  };
}
