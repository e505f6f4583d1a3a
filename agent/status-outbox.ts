// Commit statuses the agent owes GitHub, kept on disk until GitHub has them.
//
// One file per status in the outbox directory, named by a sequence number and written
// atomically, so a crash leaves whole entries only. `flush` sends them oldest first and
// removes each only after GitHub accepted it; the first failure stops the flush, so order
// is kept. Statuses for the same commit and context supersede each other (GitHub shows the
// newest per context), so a long outage queues at most one per (commit, context) and
// recovery is not a burst. A budget keeps sends within GitHub's content-creation limits.
//
// The crash window: GitHub may accept a status and the agent die (or time out) before the
// entry is removed. Before each send a `<seq>.sending` marker is written; an entry that
// still has its marker at the next flush "may already be accepted". With `isAlreadyAccepted`
// (see `githubStatusAccepted`) the flush asks GitHub first and drops the entry if the newest
// status for that context already is this one, so nothing is posted twice. Without it, the
// entry is sent again: at-least-once, never lost, and the repeat is the same state and text
// GitHub already shows. Losing a status (at-most-once) was not acceptable; a rare identical
// repeat is harmless.

import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../renderer/core/atomic-write.js';
import { GitHubError } from '../renderer/core/errors.js';
import { truncateDescription, type CommitStatusInput, type GitHubClient } from '../renderer/core/github.js';
import { GitHubForge, type Forge } from '../renderer/core/forge.js';

/** Sends one status; may say when the next send may start (GitHub: no writes left on the token until then). */
export type StatusSend = (status: CommitStatusInput) => Promise<void | { retryAt?: number }>;
export type StatusAcceptedCheck = (status: CommitStatusInput) => Promise<boolean>;

export interface QueuedStatus {
  seq: number;
  queuedAt: string;
  status: CommitStatusInput;
  /** A send was started and not confirmed: GitHub may already have it. */
  maybeSent: boolean;
}

export interface FlushResult {
  sent: number;
  /** Entries from an interrupted send that GitHub turned out to have already. */
  alreadyAccepted: number;
  /** Entries GitHub refused for good (e.g. 422); kept in `rejected.jsonl`, not retried. */
  rejected: number;
  /** Still queued after this flush. */
  pending: number;
  stopped?: { reason: 'failure'; error: unknown } | { reason: 'budget'; retryInMs: number };
}

export interface StatusOutboxOptions {
  budget?: SendBudget;
  now?: () => number;
  log?: (line: string) => void;
  /** Errors that mean "never going to work": the entry moves to `rejected.jsonl` instead of blocking the queue. */
  isPermanent?: (error: unknown) => boolean;
  /**
   * Hides host values in a description (HostSecrets.redact): before an entry is written,
   * and again before it is sent (entries an older agent queued), always before GitHub's
   * 140-character cut, so a cut value cannot leave as a prefix.
   */
  redact?: (text: string) => string;
}

/**
 * GitHub's content-creation limits, 80 a minute and 500 an hour, as sliding windows, and
 * any wait GitHub itself asked for (retry-after, a spent x-ratelimit). With a `file` the
 * windows and the wait outlive the process: `flotilla-agent once` under cron is a new
 * process every poll, and GitHub counts per token, not per process.
 */
export class SendBudget {
  private sends: number[] = [];
  private blockedUntil = 0;
  private loaded = false;
  readonly perMinute: number;
  readonly perHour: number;
  private readonly now: () => number;
  private readonly file: string | undefined;

  constructor(options: { perMinute?: number; perHour?: number; now?: () => number; file?: string } = {}) {
    this.perMinute = options.perMinute ?? 80;
    this.perHour = options.perHour ?? 500;
    this.now = options.now ?? Date.now;
    this.file = options.file;
  }

  /** Reads what earlier processes spent; a missing or unreadable file is a fresh budget. */
  async load(): Promise<void> {
    if (this.loaded || !this.file) return;
    this.loaded = true;
    try {
      const saved = JSON.parse(await fs.readFile(this.file, 'utf8')) as { sends?: unknown; blockedUntil?: unknown };
      if (Array.isArray(saved.sends)) this.sends = saved.sends.filter((t): t is number => typeof t === 'number').sort((a, b) => a - b);
      if (typeof saved.blockedUntil === 'number') this.blockedUntil = saved.blockedUntil;
    } catch {
      // first run, or a file a crash could not have left half-written (it is replaced atomically): start afresh
    }
  }

  private async save(): Promise<void> {
    if (!this.file) return;
    const t = this.now();
    this.sends = this.sends.filter((s) => s > t - 3_600_000);
    await fs.mkdir(dirname(this.file), { recursive: true });
    await writeFileAtomic(this.file, `${JSON.stringify({ sends: this.sends, blockedUntil: this.blockedUntil })}\n`);
  }

  /** 0 when a send may start now, else how long until one may. */
  waitMs(): number {
    const t = this.now();
    while (this.sends.length > 0 && this.sends[0]! <= t - 3_600_000) this.sends.shift();
    let wait = Math.max(0, this.blockedUntil - t);
    if (this.sends.length >= this.perHour) wait = Math.max(wait, this.sends[this.sends.length - this.perHour]! + 3_600_000 - t);
    const lastMinute = this.sends.filter((s) => s > t - 60_000);
    if (lastMinute.length >= this.perMinute) wait = Math.max(wait, lastMinute[lastMinute.length - this.perMinute]! + 60_000 - t);
    return wait;
  }

  async record(): Promise<void> {
    this.sends.push(this.now());
    await this.save();
  }

  /** No send before `at` (ms since the epoch), as GitHub asked. */
  async blockUntil(at: number): Promise<void> {
    this.blockedUntil = Math.max(this.blockedUntil, at);
    await this.save();
  }
}

/** Where the agent keeps its send budget, in its state dir (beside the outbox, not among its entries). */
export const STATUS_BUDGET_FILE = 'status-budget.json';

const ENTRY = /^(\d{12})\.json$/;
const MARKER = /^(\d{12})\.sending$/;

function statusKey(s: CommitStatusInput): string {
  // GitHub treats contexts case-insensitively.
  return `${s.owner}/${s.repo}@${s.sha}#${s.context}`.toLowerCase();
}

function defaultIsPermanent(error: unknown): boolean {
  return error instanceof GitHubError && (error.status === 422 || error.status === 400);
}

export class StatusOutbox {
  private readonly budget: SendBudget;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly isPermanent: (error: unknown) => boolean;
  private readonly redact: (text: string) => string;
  private nextSeq: number | undefined;
  private sendingSeq: number | undefined;
  private flushing: Promise<FlushResult> | undefined;
  private lock: Promise<unknown> = Promise.resolve();

  /** `dir` is the outbox's own directory; one agent process uses it at a time (the apply lock). */
  constructor(
    readonly dir: string,
    options: StatusOutboxOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.budget = options.budget ?? new SendBudget({ now: this.now });
    this.log = options.log ?? (() => undefined);
    this.isPermanent = options.isPermanent ?? defaultIsPermanent;
    this.redact = options.redact ?? ((text) => text);
  }

  private redacted(status: CommitStatusInput): CommitStatusInput {
    return { ...status, description: this.redact(status.description) };
  }

  /** Queues a status durably; older queued statuses for the same commit and context are dropped. */
  enqueue(status: CommitStatusInput): Promise<QueuedStatus> {
    return this.exclusive(async () => {
      const entries = await this.read();
      const seq = Math.max(this.nextSeq ?? 0, ...entries.map((e) => e.seq + 1), 1);
      this.nextSeq = seq + 1;
      const queued: QueuedStatus = { seq, queuedAt: new Date(this.now()).toISOString(), status: this.redacted(status), maybeSent: false };
      await fs.mkdir(this.dir, { recursive: true });
      await writeFileAtomic(this.entryPath(seq), `${JSON.stringify({ seq, queuedAt: queued.queuedAt, status: queued.status })}\n`);
      const key = statusKey(status);
      for (const old of entries) {
        if (statusKey(old.status) === key && old.seq !== this.sendingSeq) await this.remove(old.seq);
      }
      return queued;
    });
  }

  /** What is queued, oldest first (superseded entries a crash left behind are dropped). */
  pending(): Promise<QueuedStatus[]> {
    return this.exclusive(() => this.read(true));
  }

  /**
   * Sends queued statuses oldest first until the queue is empty, a send fails, or the
   * budget is spent. Concurrent calls share one flush.
   */
  flush(send: StatusSend, options: { isAlreadyAccepted?: StatusAcceptedCheck } = {}): Promise<FlushResult> {
    this.flushing ??= this.flushQueue(send, options.isAlreadyAccepted).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushQueue(send: StatusSend, isAlreadyAccepted: StatusAcceptedCheck | undefined): Promise<FlushResult> {
    const result: FlushResult = { sent: 0, alreadyAccepted: 0, rejected: 0, pending: 0 };
    await this.budget.load();
    for (;;) {
      const next = await this.exclusive(async () => (await this.read(true))[0]);
      if (!next) break;
      const head: QueuedStatus = { ...next, status: this.redacted(next.status) };
      // Before any request, the check for an interrupted send included: both spend the token.
      const wait = this.budget.waitMs();
      if (wait > 0) {
        result.stopped = { reason: 'budget', retryInMs: wait };
        break;
      }

      if (head.maybeSent && isAlreadyAccepted) {
        let accepted: boolean;
        try {
          accepted = await isAlreadyAccepted(head.status);
        } catch (error) {
          result.stopped = (await this.waitAsked(error, head.status)) ?? { reason: 'failure', error };
          break;
        }
        if (accepted) {
          await this.exclusive(() => this.remove(head.seq));
          result.alreadyAccepted++;
          this.log(`status ${describe(head.status)} was already accepted before an interruption; not sending it again`);
          continue;
        }
      }

      // The marker goes down before the request leaves, so a crash after GitHub accepted is visible.
      await this.exclusive(() => writeFileAtomic(this.markerPath(head.seq), ''));
      this.sendingSeq = head.seq;
      await this.budget.record();
      try {
        const answer = await send(head.status);
        if (answer?.retryAt !== undefined) await this.budget.blockUntil(answer.retryAt);
      } catch (error) {
        const asked = await this.waitAsked(error, head.status);
        if (asked) {
          result.stopped = asked;
          break;
        }
        if (this.isPermanent(error)) {
          await this.exclusive(async () => {
            await fs.appendFile(join(this.dir, 'rejected.jsonl'), `${JSON.stringify({ ...head, maybeSent: undefined, rejectedAt: new Date(this.now()).toISOString(), error: String((error as Error).message ?? error) })}\n`);
            await this.remove(head.seq);
          });
          result.rejected++;
          this.log(`status ${describe(head.status)} refused by GitHub for good, kept in rejected.jsonl: ${(error as Error).message}`);
          continue;
        }
        // The marker stays: a timeout may have been accepted; the next flush checks first.
        result.stopped = { reason: 'failure', error };
        this.log(`status ${describe(head.status)} not sent, kept in the outbox: ${(error as Error).message ?? String(error)}`);
        break;
      } finally {
        this.sendingSeq = undefined;
      }
      await this.exclusive(() => this.remove(head.seq));
      result.sent++;
    }
    result.pending = (await this.pending()).length;
    return result;
  }

  /**
   * When GitHub said how long to wait (retry-after, a spent x-ratelimit), the budget holds
   * every send until then, in this process and the next: not just until the next poll.
   */
  private async waitAsked(error: unknown, status: CommitStatusInput): Promise<FlushResult['stopped'] | undefined> {
    if (!(error instanceof GitHubError) || error.retryAt === undefined || error.retryAt <= this.now()) return undefined;
    await this.budget.blockUntil(error.retryAt);
    const retryInMs = error.retryAt - this.now();
    this.log(`status ${describe(status)} not sent: GitHub asks to wait ${Math.ceil(retryInMs / 1000)}s; kept in the outbox`);
    return { reason: 'budget', retryInMs };
  }

  /** Reads the queue in order; with `coalesce`, deletes entries a newer one supersedes. */
  private async read(coalesce = false): Promise<QueuedStatus[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const markers = new Set(names.map((n) => MARKER.exec(n)?.[1]).filter((x): x is string => x !== undefined).map(Number));
    const entries: QueuedStatus[] = [];
    for (const name of names.sort()) {
      const m = ENTRY.exec(name);
      if (!m) continue;
      const seq = Number(m[1]);
      let parsed: { queuedAt: string; status: CommitStatusInput };
      try {
        parsed = JSON.parse(await fs.readFile(join(this.dir, name), 'utf8')) as typeof parsed;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        // Atomic writes make this unexpected; keep the bytes for a person, out of the queue.
        await fs.rename(join(this.dir, name), join(this.dir, `unreadable-${name}`));
        this.log(`outbox entry ${name} is unreadable, moved aside: ${(err as Error).message}`);
        continue;
      }
      entries.push({ seq, queuedAt: parsed.queuedAt, status: parsed.status, maybeSent: markers.has(seq) });
    }
    // A marker whose entry is gone: the crash came between the two unlinks.
    for (const seq of markers) {
      if (!entries.some((e) => e.seq === seq)) await fs.rm(this.markerPath(seq), { force: true });
    }
    if (!coalesce) return entries;
    const newest = new Map<string, number>();
    for (const e of entries) newest.set(statusKey(e.status), e.seq);
    const kept: QueuedStatus[] = [];
    for (const e of entries) {
      if (newest.get(statusKey(e.status)) === e.seq || e.seq === this.sendingSeq) kept.push(e);
      else await this.remove(e.seq);
    }
    return kept;
  }

  private async remove(seq: number): Promise<void> {
    await fs.rm(this.entryPath(seq), { force: true });
    await fs.rm(this.markerPath(seq), { force: true });
  }

  private entryPath(seq: number): string {
    return join(this.dir, `${String(seq).padStart(12, '0')}.json`);
  }

  private markerPath(seq: number): string {
    return join(this.dir, `${String(seq).padStart(12, '0')}.sending`);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }
}

function describe(s: CommitStatusInput): string {
  return `${s.context}=${s.state} on ${s.owner}/${s.repo}@${s.sha.slice(0, 12)} (${JSON.stringify(truncateDescription(s.description))})`;
}

/** Sends through the forge, GitHub or Gitea (retries and rate limits are its client's). */
export function forgeStatusSend(forge: Forge): StatusSend {
  return async (status) => {
    const { retryAt } = await forge.createCommitStatus(status);
    return retryAt === undefined ? undefined : { retryAt };
  };
}

/** True when the newest status the forge shows for this commit and context is exactly this one. */
export function forgeStatusAccepted(forge: Forge): StatusAcceptedCheck {
  return async (status) => {
    const statuses = await forge.listStatuses({ owner: status.owner, repo: status.repo, ref: status.sha, perPage: 100 });
    const newest = statuses.find((s) => s.context.toLowerCase() === status.context.toLowerCase());
    return (
      newest !== undefined &&
      newest.state === status.state &&
      // Gitea answers "" where GitHub answers null.
      (newest.description ?? '') === truncateDescription(status.description) &&
      (newest.targetUrl || null) === (status.targetUrl || null)
    );
  };
}

/** Sends through a GitHub client (kept for callers that hold one): the GitHub forge. */
export function githubStatusSend(client: GitHubClient): StatusSend {
  return forgeStatusSend(new GitHubForge(client, ''));
}

/** The accepted check through a GitHub client: the GitHub forge. */
export function githubStatusAccepted(client: GitHubClient): StatusAcceptedCheck {
  return forgeStatusAccepted(new GitHubForge(client, ''));
}

/** Without a status token: the status is written to the log only (the caller records it in state). */
export function logStatusSend(log: (line: string) => void): StatusSend {
  return async (status) => {
    log(`status ${describe(status)}${status.targetUrl ? ` ${status.targetUrl}` : ''} (not sent: the agent has no GitHub token)`);
  };
}
