// The agent's log: one line per step. Human-readable text by default (colour on a
// TTY), JSON lines with `--log-format json` for a log shipper. Every line passes
// through the host's redaction (agent/redact.ts: `.env` values, secrets) and then
// redactSecrets: the known token values and anything shaped like a credential (URL
// userinfo, bearer headers, GitHub token prefixes) become ***.
import { pino, type Logger } from 'pino';
import { SettingError } from '../renderer/core/errors.js';

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export function parseLogFormat(raw: string | undefined): LogFormat {
  if (raw === undefined || raw === '') return 'text';
  if ((LOG_FORMATS as readonly string[]).includes(raw)) return raw as LogFormat;
  throw new SettingError('--log-format', `must be text or json, got ${JSON.stringify(raw)}`);
}

const CREDENTIAL_SHAPES: RegExp[] = [
  /(?<=[a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, // https://user:token@host
  /(?<=\bbearer\s+)[^\s"']+/gi,
  /(?<=\b(?:token|authorization)[=:]\s*)[^\s"',]+/gi,
  /\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{10,}/g,
];

/** The text with every secret value and credential-shaped substring replaced by ***. */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  // Longest first, so a secret containing another is not half-replaced.
  for (const secret of [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length)) {
    out = out.split(secret).join('***');
  }
  for (const shape of CREDENTIAL_SHAPES) out = out.replace(shape, (m) => (m.endsWith('@') ? '***@' : '***'));
  return out;
}

export interface AgentLogOptions {
  format: LogFormat;
  tenant: string;
  /** Where finished lines go (stderr in the real process). */
  write: (line: string) => void;
  /** Colour the text format (a TTY). */
  color?: boolean;
  /** Values never to print (tokens from the settings). */
  secrets?: readonly string[];
  /** Applied to every line when it is written (HostSecrets.redact: host values, read at that moment). */
  redact?: (text: string) => string;
  /** Tests pin the clock. */
  now?: () => Date;
}

export interface AgentLog {
  /** The `log(line)` the reconcile pass and the daemon take. */
  (line: string): void;
  warn(line: string): void;
  error(line: string): void;
  logger: Logger;
}

interface LogRecord {
  level: number;
  time: string;
  tenant?: string;
  msg?: string;
  [field: string]: unknown;
}

const LEVELS: Record<number, [label: string, colour: string]> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '34'],
  30: ['INFO', '32'],
  40: ['WARN', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '35'],
};
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * `[2030-01-02 04:04:05.678] INFO: [linda] apply: swapped 3 files`, in local time, with
 * any structured fields after it as JSON. Written here rather than with pino-pretty:
 * the one fixed line shape costs a few lines, pino-pretty ~10 MB of an idle agent's memory.
 */
export function textLine(record: LogRecord, colour: boolean): string {
  const { level, time, tenant, msg, pid: _pid, hostname: _hostname, ...fields } = record;
  const t = new Date(time);
  const stamp = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
  const [label, code] = LEVELS[level] ?? [`LEVEL${level}`, '0'];
  const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
  return `[${stamp}] ${colour ? `\u001b[${code}m${label}\u001b[39m` : label}: [${tenant ?? '-'}] ${msg ?? ''}${extra}\n`;
}

/** A logger writing through `write`, synchronously (a crash must not lose the line that explains it). */
export function createAgentLog(opts: AgentLogOptions): AgentLog {
  const secrets = opts.secrets ?? [];
  const hostRedact = opts.redact ?? ((text: string) => text);
  const pretty = opts.format === 'text' ? (record: LogRecord) => textLine(record, opts.color === true) : undefined;
  const logger = pino(
    {
      base: { tenant: opts.tenant },
      ...(opts.now ? { timestamp: () => `,"time":"${opts.now!().toISOString()}"` } : { timestamp: pino.stdTimeFunctions.isoTime }),
      // Structured fields that could carry a credential never reach the output.
      redact: { paths: ['token', 'gitToken', 'githubToken', 'authorization', '*.token', '*.authorization'], censor: '***' },
      hooks: {
        logMethod(args, method) {
          const [first, ...rest] = args;
          if (typeof first === 'string') return method.apply(this, [redactSecrets(hostRedact(first), secrets), ...rest] as Parameters<typeof method>);
          return method.apply(this, args);
        },
      },
    },
    {
      write(chunk: string) {
        opts.write(pretty ? pretty(JSON.parse(chunk) as LogRecord) : chunk);
      },
    },
  );
  const log = ((line: string) => logger.info(line)) as AgentLog;
  log.warn = (line) => logger.warn(line);
  log.error = (line) => logger.error(line);
  log.logger = logger;
  return log;
}
