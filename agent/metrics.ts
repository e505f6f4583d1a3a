// `flotilla-agent run --metrics 127.0.0.1:PORT`: the daemon's state in Prometheus
// text format (prom-client). The run loop feeds each pass's outcome in; values that
// live on disk or in time (outbox length, time since the last good poll) are read
// at scrape time, so a scrape always sees the present.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { SettingError } from '../renderer/core/errors.js';
import { isFailedPoll, type ReconcileOutcome } from './reconcile.js';

export interface AgentMetricsOptions {
  tenant: string;
  /** Statuses waiting in the outbox; read at each scrape. */
  outboxLength: () => Promise<number>;
  /** The commit applied before this process started (from the state file). */
  lastApplied?: string;
  /** The last successful poll before this process started (from the state file). */
  lastSuccessfulPoll?: Date;
  /** Applied to every label value at scrape time (HostSecrets.redact). */
  redact?: (text: string) => string;
  now?: () => Date;
}

export interface AgentMetrics {
  registry: Registry;
  /** One finished pass: its outcome and how long it took. */
  recordPass(outcome: ReconcileOutcome, durationSeconds: number): void;
  /** A pass that threw instead of returning an outcome. */
  recordPassError(): void;
  /** The exposition text, as a scrape gets it. */
  text(): Promise<string>;
}

const APPLY_OUTCOMES = ['applied', 'refused', 'failed'] as const;

export function createAgentMetrics(opts: AgentMetricsOptions): AgentMetrics {
  const now = opts.now ?? (() => new Date());
  const registry = new Registry();
  registry.setDefaultLabels({ tenant: opts.tenant });
  const startedAt = now();
  let lastSuccess: Date | undefined = opts.lastSuccessfulPoll;

  const lastApplied = new Gauge({
    name: 'flotilla_agent_last_applied_info',
    help: 'Always 1; the commit label is the tenant commit last applied on this host',
    labelNames: ['commit'],
    registers: [registry],
  });
  const applies = new Counter({
    name: 'flotilla_agent_applies_total',
    help: 'Apply attempts by outcome (applied, refused before any change, failed and rolled back)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'flotilla_agent_apply_duration_seconds',
    help: 'Duration of passes that attempted an apply, from ref check to recorded outcome',
    labelNames: ['outcome'],
    buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const pollFailures = new Counter({
    name: 'flotilla_agent_poll_failures_total',
    help: 'Passes that could not check or fetch the tenant branch (git unreachable, bad token, internal error)',
    registers: [registry],
  });
  const drift = new Gauge({
    name: 'flotilla_agent_drift_files',
    help: 'Managed files whose content on disk differs from the last applied commit, at the last pass',
    registers: [registry],
  });
  new Gauge({
    name: 'flotilla_agent_outbox_length',
    help: 'Commit statuses queued on disk, not yet accepted by GitHub',
    registers: [registry],
    async collect() {
      this.set(await opts.outboxLength());
    },
  });
  new Gauge({
    name: 'flotilla_agent_seconds_since_last_successful_poll',
    help: 'Seconds since the last pass that reached the tenant branch (since agent start when none has yet)',
    registers: [registry],
    collect() {
      this.set(Math.max(0, (now().getTime() - (lastSuccess ?? startedAt).getTime()) / 1000));
    },
  });
  for (const outcome of APPLY_OUTCOMES) applies.inc({ outcome }, 0);
  pollFailures.inc(0);
  drift.set(0);
  const setLastApplied = (commit: string) => {
    lastApplied.reset();
    lastApplied.set({ commit }, 1);
  };
  if (opts.lastApplied) setLastApplied(opts.lastApplied);

  return {
    registry,
    recordPass(outcome, durationSeconds) {
      // A fault of the host's is waited out with backoff, as an unreachable git host is.
      if (isFailedPoll(outcome)) {
        pollFailures.inc();
        return;
      }
      lastSuccess = now();
      // Waiting for a window: a good poll, and no apply; the drift of the applied commit was not looked at.
      if (outcome.kind === 'waiting') return;
      if (outcome.kind === 'noop') {
        drift.set(outcome.drift.length);
        return;
      }
      applies.inc({ outcome: outcome.kind });
      duration.observe({ outcome: outcome.kind }, durationSeconds);
      if (outcome.kind === 'applied') {
        setLastApplied(outcome.commit);
        drift.set(0);
      }
    },
    recordPassError() {
      pollFailures.inc();
    },
    text: async () => redactLabelValues(await registry.metrics(), opts.redact),
  };
}

// A label value in the exposition format: `name="value"` after `{` or `,`, with \\, \" and \n escapes.
const LABEL_VALUE = /([{,]\s*[a-zA-Z_][a-zA-Z0-9_]*=")((?:[^"\\\n]|\\.)*)"/g;

/** The exposition text with `redact` applied to each label value (the only free text in it). */
export function redactLabelValues(text: string, redact: ((text: string) => string) | undefined): string {
  if (!redact) return text;
  return text.replace(LABEL_VALUE, (_m, head: string, value: string) => `${head}${redact(value)}"`);
}

/** `HOST:PORT` of --metrics; only an address literal, so the agent never binds a name it did not mean. */
export function parseListenAddress(raw: string): { host: string; port: number } {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:]+\]):(\d{1,5})$/i.exec(raw.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new SettingError('--metrics', `expected IP:PORT such as 127.0.0.1:9464, got ${JSON.stringify(raw)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export interface MetricsServer {
  /** http://host:port/metrics */
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics (and / for a person with a browser); anything else is 404. */
export async function serveMetrics(metrics: AgentMetrics, listen: string): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new SettingError('--metrics', `cannot listen on ${listen}: ${(e as Error).message}`)));
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
