// One reconcile pass for unit tests, with what it reports recorded: each status as a
// line `state: description` (or as `statusLine` writes it) and each log line.
import { reconcileOnce, type ReconcileDeps, type ReconcileOutcome, type StatusUpdate } from '../../agent/reconcile.js';

export interface RecordedPass {
  outcome: ReconcileOutcome;
  /** The statuses reported, in order, one line each. */
  statuses: string[];
  log: string[];
}

export interface RecordedPassOptions {
  /** How a status is recorded; default `state: description`. */
  statusLine?: (update: StatusUpdate) => string;
}

const plainStatusLine = (u: StatusUpdate) => `${u.state}: ${u.description}`;

/** Runs `reconcileOnce` with `deps` (health polled every millisecond unless they say otherwise), recording statuses and log. */
export async function recordedPass(deps: Omit<ReconcileDeps, 'report' | 'log'>, opts: RecordedPassOptions = {}): Promise<RecordedPass> {
  const statusLine = opts.statusLine ?? plainStatusLine;
  const statuses: string[] = [];
  const log: string[] = [];
  const outcome = await reconcileOnce({
    healthPollMs: 1,
    ...deps,
    report: async (u) => void statuses.push(statusLine(u)),
    log: (line) => void log.push(line),
  });
  return { outcome, statuses, log };
}
