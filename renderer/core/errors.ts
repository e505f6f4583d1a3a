// One error class per kind of problem a user can act on. Each carries a stable
// `code` and the context a person needs to fix it (file, tenant, key, line, step).
// The CLIs turn these into a message and an exit code in exactly one place.

export abstract class FlotillaError extends Error {
  abstract readonly code: string;
  /** Exit code the CLI uses for this kind of error. */
  readonly exitCode: number = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem found in the fleet configuration. */
export interface ConfigProblem {
  file: string;
  /** Dotted key path inside the file, e.g. `env.SMTP_HOST`; empty for the whole file. */
  keyPath: string;
  line?: number;
  message: string;
}

export function formatConfigProblem(p: ConfigProblem): string {
  const where = `${p.file}${p.line !== undefined ? `:${p.line}` : ''}`;
  return `${where}: ${p.keyPath ? `${p.keyPath}: ` : ''}${p.message}`;
}

/** The fleet config (fleet.yaml, tenants/*.yaml) is invalid; lists every problem, not just the first. */
export class FleetConfigError extends FlotillaError {
  readonly code = 'FLEET_CONFIG';
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map(formatConfigProblem).join('\n'));
  }
}

/** A template failed to compile or render for a tenant. */
export class TemplateError extends FlotillaError {
  readonly code = 'TEMPLATE';
  constructor(
    readonly template: string,
    readonly tenant: string,
    readonly detail: string,
    readonly line?: number,
    readonly variable?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${template}${line !== undefined ? `:${line}` : ''} (tenant ${tenant}): ${detail}`,
      options,
    );
  }
}

/** A rendered output is not what its consumer accepts (e.g. compose output that is not YAML). */
export class RenderedOutputError extends FlotillaError {
  readonly code = 'RENDERED_OUTPUT';
  constructor(
    readonly file: string,
    readonly tenant: string,
    readonly detail: string,
  ) {
    super(`${file} (tenant ${tenant}): ${detail}`);
  }
}

/** An `.env` file cannot be parsed or patched as asked. */
export class EnvFileError extends FlotillaError {
  readonly code = 'ENV_FILE';
  constructor(
    readonly file: string,
    readonly detail: string,
    readonly line?: number,
    readonly key?: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${key ? `${key}: ` : ''}${detail}`);
  }
}

/** A compose file holds an invalid interpolation expression, or is not YAML. */
export class ComposeFileError extends FlotillaError {
  readonly code = 'COMPOSE_FILE';
  constructor(
    readonly file: string,
    /** YAML path of the offending value, e.g. `services.api.image`. */
    readonly yamlPath: string,
    readonly detail: string,
  ) {
    super(`${file}: ${yamlPath ? `${yamlPath}: ` : ''}${detail}`);
  }
}

/** A tenant manifest is malformed or unsafe (bad path, hash mismatch, duplicate path). */
export class ManifestError extends FlotillaError {
  readonly code = 'MANIFEST';
  constructor(
    readonly detail: string,
    readonly path?: string,
  ) {
    super(`manifest${path ? ` ${JSON.stringify(path)}` : ''}: ${detail}`);
  }
}

/** A path would escape the install directory or write through a symlink. */
export class UnsafePathError extends FlotillaError {
  readonly code = 'UNSAFE_PATH';
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`refusing path ${JSON.stringify(path)}: ${detail}`);
  }
}

/** A git operation failed; `url` is already sanitised of credentials. */
export class GitError extends FlotillaError {
  readonly code = 'GIT';
  constructor(
    readonly operation: string,
    readonly url: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`git ${operation} ${url}: ${detail}`, options);
  }
}

/** A GitHub API call failed. */
export class GitHubError extends FlotillaError {
  readonly code = 'GITHUB';
  /** When GitHub said to come back (retry-after, or x-ratelimit-reset with none remaining), in ms since the epoch. */
  readonly retryAt: number | undefined;
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly detail: string,
    options?: { cause?: unknown; retryAt?: number },
  ) {
    super(`GitHub ${operation}${status ? ` (HTTP ${status})` : ''}: ${detail}`, options);
    this.retryAt = options?.retryAt;
  }
}

/** A compose command failed at a named step of an apply. */
export class ComposeStepError extends FlotillaError {
  readonly code = 'COMPOSE_STEP';
  constructor(
    readonly step: string,
    /** Last lines of compose's own output. */
    readonly outputTail: string,
  ) {
    super(`${step} failed${outputTail ? `: ${outputTail}` : ''}`);
  }
}

/** An apply is refused before anything changes (missing variables, non-fast-forward, bad signature). */
export class ApplyRefusedError extends FlotillaError {
  readonly code = 'APPLY_REFUSED';
  override readonly exitCode = 3;
  constructor(
    readonly reason: string,
    readonly missing: string[] = [],
  ) {
    super(`refused: ${reason}`);
  }
}

/** `render --out` would replace or delete what it did not write (a live install, a hand edit). */
export class OutputNotOursError extends FlotillaError {
  readonly code = 'OUTPUT_NOT_OURS';
  override readonly exitCode = 3;
  constructor(
    readonly dir: string,
    readonly foreign: string[],
  ) {
    const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? `, and ${foreign.length - 5} more` : '');
    super(`refusing to write ${dir}: it holds what flotilla render did not write: ${shown}; choose an empty or new folder`);
  }
}

/** An agent or CLI setting is missing or invalid. */
export class SettingError extends FlotillaError {
  readonly code = 'SETTING';
  override readonly exitCode = 2;
  constructor(
    readonly setting: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${setting}: ${detail}`, options);
  }
}

/** Another agent holds the apply lock for this install dir. */
export class LockHeldError extends FlotillaError {
  readonly code = 'LOCK_HELD';
  override readonly exitCode = 4;
  constructor(
    readonly lockFile: string,
    readonly holderPid?: number,
    /** The holder's state dir, when the lock is an install dir's (two agents on one install). */
    readonly holderStateDir?: string,
  ) {
    super(
      `another flotilla-agent${holderPid ? ` (pid ${holderPid}${holderStateDir ? `, state dir ${holderStateDir}` : ''})` : ''} holds ${lockFile}; wait for it or stop it`,
    );
  }
}

/** An image tag is missing from its registry. */
export class RegistryError extends FlotillaError {
  readonly code = 'REGISTRY';
  constructor(
    readonly image: string,
    readonly detail: string,
  ) {
    super(`${image}: ${detail}`);
  }
}

/** The apply journal in the agent's state dir is unreadable or names a backup that is gone. */
export class JournalError extends FlotillaError {
  readonly code = 'JOURNAL';
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A template cannot be compiled at all (syntax error, unknown helper, output path not allowed); no tenant involved. */
export class TemplateCompileError extends FlotillaError {
  readonly code = 'TEMPLATE_COMPILE';
  constructor(
    readonly template: string,
    readonly detail: string,
    readonly line?: number,
  ) {
    super(`${template}${line !== undefined ? `:${line}` : ''}: ${detail}`);
  }
}

/** Several independent problems found in one run (e.g. `flotilla check` over every tenant); lists them all. */
export class ProblemListError extends FlotillaError {
  readonly code = 'PROBLEMS';
  constructor(readonly problems: FlotillaError[]) {
    super(problems.map((p) => p.message).join('\n'));
  }
}

/** `flotilla status` found tenants whose latest rollout failed; the table above names them. */
export class TenantsFailedError extends FlotillaError {
  readonly code = 'TENANTS_FAILED';
  constructor(readonly tenants: string[]) {
    super(`${tenants.length} tenant${tenants.length === 1 ? '' : 's'} failed: ${tenants.join(', ')}`);
  }
}

/** A hook the fleet config declares exited non-zero or timed out; `logFile` holds its whole output. */
export class HookFailedError extends FlotillaError {
  readonly code = 'HOOK_FAILED';
  constructor(
    readonly phase: 'pre-swap' | 'post-up',
    readonly hook: string,
    /** The hook's last output line, or its exit code when it printed nothing. */
    readonly detail: string,
    readonly logFile: string,
  ) {
    super(`${phase} hook ${hook} failed: ${detail}`);
  }
}

/**
 * An age-encrypted secret (renderer/core/secrets.ts) cannot be turned back into a value
 * on this host. Names the key and why, never the value or the ciphertext. For the agent
 * it is the commit's fault (or the fleet's recipients'), so it refuses the apply: exit 3.
 */
export class SecretDecryptError extends FlotillaError {
  readonly code = 'SECRET_DECRYPT';
  override readonly exitCode = 3;
  constructor(
    /** The env key the secret is for, e.g. `SMTP_PASSWORD`. */
    readonly key: string,
    /**
     * `not-for-this-host`: none of the ciphertext's recipients is this host's identity;
     * `damaged`: not age armor, or truncated or tampered with (header MAC, payload);
     * `bad-value`: decrypted, but not a value `.env` can hold (see SecretValueError).
     */
    readonly reason: 'not-for-this-host' | 'damaged' | 'bad-value',
    readonly detail: string,
  ) {
    super(`secret ${key} cannot be decrypted: ${detail}`);
  }
}

/** A secret value Flotilla will not carry (empty, a line break, too long). Names the key, never the value. */
export class SecretValueError extends FlotillaError {
  readonly code = 'SECRET_VALUE';
  constructor(
    readonly key: string,
    readonly detail: string,
  ) {
    super(`secret ${key}: ${detail}`);
  }
}

/** A string given as an age recipient (`age1…`) is not one. Never echoes a private key given by mistake. */
export class AgeRecipientError extends FlotillaError {
  readonly code = 'AGE_RECIPIENT';
  constructor(
    /** The recipient as shown: shortened, and withheld when it looks like a private key. */
    readonly shown: string,
    readonly detail: string,
    /** Where it came from, e.g. `ageRecipients[1]` or `defaults.adminAgeRecipients[0]`. */
    readonly where?: string,
  ) {
    super(`${where ? `${where}: ` : ''}${shown}: ${detail}`);
  }
}

/**
 * The host's age identity file (the private key the agent decrypts secrets with) is
 * missing, unreadable, not an age identity, readable by group or others, or already
 * there when `keygen` would create it. A fault of the host, not of a commit: exit 2.
 */
export class AgeIdentityError extends FlotillaError {
  readonly code = 'AGE_IDENTITY';
  override readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`age identity ${path}: ${detail}`);
  }
}

/**
 * The key given to sign tenant commits with (`--signing-key`) is missing, unreadable,
 * passphrase-protected, or not an Ed25519 private key. Names the file, never its content.
 * A fault of the command line, not of the fleet: exit 2, as SettingError.
 */
export class SigningKeyError extends FlotillaError {
  readonly code = 'SIGNING_KEY';
  override readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`signing key ${path}: ${detail}`);
  }
}
