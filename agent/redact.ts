// Host values never leave the host, not even inside an error message. Compose quotes
// the value it could not use (`cpus: ${APP_SECRET}`), a hook prints what it read, and
// either can land in a status description, a log line, a metric label or the plan.
// Every such text passes through HostSecrets.redact on its way out (the outbox, the
// log, the metrics scrape, `plan`), so no call site has to remember to.
//
// What is hidden: the value of every `.env` key the env patch does not manage (a
// host-held key; the fleet never sees them, so any of them may be a password), every
// secret the manifest names, every secret generated in this process (a first apply's
// secret is gone from disk again after a rollback, but its text may still be on the
// way out), and the agent's tokens. `.env` is read when the text leaves, from the
// install dir and from the staging dir beside it (where a new secret sits before the
// swap), so a value changed on the host is hidden from the next line on.
//
// How much is hidden (docs/hardening.md, "Secrets stay on the host"):
//   - values of MIN_SECRET_LENGTH (4) characters or more; shorter ones would mask
//     half of every line and are not worth guessing anyway;
//   - values of 4 to 7 characters wherever they occur whole;
//   - values of FRAGMENT_LENGTH (8) characters or more: any run of 8 of their
//     characters, so a prefix cut by a length cap (a 140-character status, an
//     80-character hook line) or a value wrapped over two lines (line breaks are
//     skipped when matching) does not survive either. At most 7 consecutive
//     characters of a secret can remain, at the edges of a mask.
// Each masked run becomes `***`. Values equal to something public (an env patch
// value, the tenant slug) are not hidden: they are in git already.
import { readFileSync } from 'node:fs';
import { dirname, basename, join, resolve } from 'node:path';
import { parseEnvText } from '../renderer/core/env-file.js';
import type { Manifest } from '../renderer/core/manifest.js';
import { readState } from './state.js';

export const MASK = '***';
export const MIN_SECRET_LENGTH = 4;
export const FRAGMENT_LENGTH = 8;
/** Past this length only a value's head and tail are cut into fragments: a 1 MB `.env` line must not cost an idle agent its memory. */
const FRAGMENT_SPAN = 4096;

/** Masks values in text; built once per set of values (the fragments of every value are indexed). */
export class SecretMatcher {
  private readonly fragments = new Set<string>();
  private readonly whole: string[];

  constructor(values: Iterable<string>) {
    const whole = new Set<string>();
    for (const value of values) {
      if (value.length < MIN_SECRET_LENGTH) continue;
      whole.add(value);
      if (value.length < FRAGMENT_LENGTH) continue;
      const spans = value.length > 2 * FRAGMENT_SPAN ? [value.slice(0, FRAGMENT_SPAN), value.slice(-FRAGMENT_SPAN)] : [value];
      for (const span of spans) for (let i = 0; i + FRAGMENT_LENGTH <= span.length; i++) this.fragments.add(span.slice(i, i + FRAGMENT_LENGTH));
    }
    // Whole values matter only for those too short to have fragments, and for long ones past the fragment spans.
    this.whole = [...whole].filter((v) => v.length < FRAGMENT_LENGTH || v.length > 2 * FRAGMENT_SPAN).sort((a, b) => b.length - a.length);
  }

  get empty(): boolean {
    return this.fragments.size === 0 && this.whole.length === 0;
  }

  redact(text: string): string {
    if (this.empty || text.length < MIN_SECRET_LENGTH) return text;
    // Matching runs over the text without its line breaks; positions map back to the text.
    const at: number[] = [];
    let joined = '';
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\n' || c === '\r') continue;
      at.push(i);
      joined += c;
    }
    const masked = new Uint8Array(text.length);
    const mark = (from: number, length: number) => {
      for (let k = from; k < from + length; k++) masked[at[k]!] = 1;
    };
    if (this.fragments.size > 0) {
      for (let i = 0; i + FRAGMENT_LENGTH <= joined.length; i++) if (this.fragments.has(joined.slice(i, i + FRAGMENT_LENGTH))) mark(i, FRAGMENT_LENGTH);
    }
    for (const value of this.whole) {
      for (let i = joined.indexOf(value); i !== -1; i = joined.indexOf(value, i + 1)) mark(i, value.length);
    }
    let out = '';
    let inMask = false;
    for (let i = 0; i < text.length; i++) {
      if (masked[i]) {
        if (!inMask) out += MASK;
        inMask = true;
      } else {
        out += text[i];
        inMask = false;
      }
    }
    return out;
  }
}

/** The values in text replaced (see the header); builds a matcher each call. */
export function redactValues(text: string, values: Iterable<string>): string {
  return new SecretMatcher(values).redact(text);
}

const ENV_LINE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(.*?)\s*$/;

/**
 * Every key's values in `.env` text: as compose reads them, and as written (quotes
 * stripped), since an error may quote either. A file compose cannot parse still
 * has its lines read one by one: a broken `.env` is no reason to print its values.
 */
export function envValuesForRedaction(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  const add = (key: string, value: string) => {
    const seen = out.get(key) ?? new Set<string>();
    seen.add(value);
    out.set(key, seen);
  };
  try {
    for (const entry of parseEnvText(text, '.env').entries) add(entry.key, entry.value);
  } catch {
    // read below, line by line
  }
  for (const line of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const m = ENV_LINE.exec(line);
    if (!m) continue;
    const raw = m[2]!;
    add(m[1]!, /^(['"]).*\1$/.test(raw) ? raw.slice(1, -1) : raw.replace(/\s+#.*$/, ''));
  }
  return out;
}

export interface HostSecretsOptions {
  installDir: string;
  /** Always hidden: the agent's own tokens. */
  fixed?: readonly string[];
}

/** What text leaving the agent must not carry, read from the host when asked. */
export class HostSecrets {
  private readonly installDir: string;
  private readonly fixed: string[];
  private readonly publicKeys = new Set<string>();
  private readonly secretKeys = new Set<string>();
  private readonly publicValues = new Set<string>();
  private readonly remembered = new Set<string>();
  private version = 0;
  private cache: { key: string; matcher: SecretMatcher } | undefined;

  constructor(opts: HostSecretsOptions) {
    this.installDir = resolve(opts.installDir);
    this.fixed = (opts.fixed ?? []).filter((s) => s.length > 0);
  }

  /** A manifest this host applies or applied: its env patch keys are public, its secrets are not. */
  noteManifest(manifest: Pick<Manifest, 'tenant' | 'envPatch' | 'secrets'>): void {
    for (const [key, value] of Object.entries(manifest.envPatch)) {
      this.publicKeys.add(key);
      this.publicValues.add(value);
    }
    for (const name of manifest.secrets) this.secretKeys.add(name);
    this.publicValues.add(manifest.tenant);
    this.version++;
  }

  /** Values generated in this process (new secrets), hidden even once no file holds them. */
  remember(values: Iterable<string>): void {
    for (const v of values) this.remembered.add(v);
    this.version++;
  }

  private envTexts(): string[] {
    // The staging dir's name as apply.ts's stagingDirFor gives it (not imported: this module stays small, for the log).
    const staging = join(dirname(this.installDir), `.${basename(this.installDir)}.flotilla-staging`);
    const texts: string[] = [];
    for (const dir of [this.installDir, staging]) {
      try {
        texts.push(readFileSync(join(dir, '.env'), 'utf8'));
      } catch {
        // no .env there (yet)
      }
    }
    return texts;
  }

  /** The values hidden right now. */
  values(envTexts = this.envTexts()): string[] {
    const out = new Set<string>([...this.fixed, ...this.remembered]);
    for (const text of envTexts) {
      for (const [key, values] of envValuesForRedaction(text)) {
        const hostHeld = this.secretKeys.has(key) || !this.publicKeys.has(key);
        if (!hostHeld) continue;
        for (const v of values) if (this.secretKeys.has(key) || !this.publicValues.has(v)) out.add(v);
      }
    }
    return [...out];
  }

  redact(text: string): string {
    const texts = this.envTexts();
    const key = `${this.version}\u0000${texts.join('\u0000')}`;
    if (this.cache?.key !== key) this.cache = { key, matcher: new SecretMatcher(this.values(texts)) };
    return this.cache.matcher.redact(text);
  }
}

/** The redaction of an agent pass: its tokens, and the manifest applied last (from the state dir) as a start. */
export async function loadHostSecrets(config: { installDir: string; stateDir: string; gitToken?: string; githubToken?: string }): Promise<HostSecrets> {
  const secrets = new HostSecrets({ installDir: config.installDir, fixed: [config.gitToken ?? '', config.githubToken ?? ''] });
  const state = await readState(config.stateDir).catch(() => undefined);
  if (state?.lastApplied) secrets.noteManifest(state.lastApplied.manifest);
  return secrets;
}
