// Whose fault a failure before the swap is. A registry or git host that is down, a
// disk that is full, the agent's own settings: none of that is the commit's doing, and
// it goes away on its own or by a fix on the host. Such a fault is retried with the
// daemon's backoff and reported as `pending` with the reason; only after a bounded time
// does it become a `failure`, which then names the host, not the commit. By the wave
// rules a `failure` halts the rollout and opens a rollback PR: a blip must not do that.
//
// What the commit itself gets wrong (a tag not in the registry, a compose file compose
// rejects, a failed health check, a refused manifest) is not matched here and fails at once.
import { ComposeStepError, GitError, SettingError } from '../renderer/core/errors.js';

/**
 * What compose and the engine print when the registry cannot be reached or answers
 * with a server error (docker's own wording, compose v1 and v2 alike).
 */
const REGISTRY_UNREACHABLE =
  /connection refused|connection reset|no such host|i\/o timeout|tls handshake timeout|client\.timeout|context deadline exceeded|network is unreachable|no route to host|temporary failure in name resolution|server misbehaving|toomanyrequests|too many requests|\b50[0234]\b|service unavailable|bad gateway|gateway time-?out|internal server error/i;

/** What says the tag or repository is not there, or access is refused for it: the commit's to fix. */
const NOT_THERE = /manifest unknown|not found|does not exist|repository name not known|pull access denied|unauthorized|denied/i;

/** The host's reason a failure at `step` (before the swap) happened, or undefined when it is the commit's. */
export function hostFaultOf(step: string, err: unknown): string | undefined {
  if (err instanceof SettingError) return `agent setting ${err.setting}`;
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC' || /\bENOSPC\b|no space left on device/i.test(String((err as Error)?.message ?? ''))) return 'disk full';
  // The fetch of the commit, or of its history for the fast-forward check; reading what arrived is not matched.
  if (err instanceof GitError && err.operation.startsWith('fetch')) return 'git host unreachable';
  if (err instanceof ComposeStepError && step === 'pull') {
    if (/no space left on device/i.test(err.outputTail)) return 'disk full';
    if (REGISTRY_UNREACHABLE.test(err.outputTail) && !NOT_THERE.test(err.outputTail)) return 'registry unreachable';
  }
  if (err instanceof ComposeStepError && /command not found|ENOENT|cannot connect to the docker daemon|is the docker daemon running/i.test(err.outputTail)) return 'compose or the engine unavailable';
  return undefined;
}
