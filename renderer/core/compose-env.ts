// The variables compose v2 interpolates a project with: `.env` read as compose-go reads
// it (env-file.ts) and expanded by compose's rules (compose-vars.ts). Its own file so
// neither of those two imports the other.
import { EvaluationCollector, interpolate, InvalidInterpolationError, type VariableEvaluation } from './compose-vars.js';
import { envTemplates } from './env-file.js';
import { EnvFileError } from './errors.js';

/** The environment compose interpolates a project with, and what reading `.env` reported. */
export interface ComposeEnvironment {
  env: Record<string, string>;
  /** Names `.env` values reference that compose would blank or stop on while reading it. */
  evaluation: VariableEvaluation;
}

/**
 * The variables compose v2 interpolates with: the `.env` values (last assignment of a
 * key wins) with the process environment over them, as compose-go's dotenv loader
 * builds them. A value compose expands (bare, or double-quoted with a `$`) is
 * interpolated against the process environment first, then the keys assigned above
 * it, from the same reading of the text as readEnvValues (env-file.ts envTemplates).
 * @throws EnvFileError for text compose would reject, naming the line and key.
 */
export function composeEnvironment(
  envText: string,
  envFile: string,
  processEnv: Record<string, string | undefined>,
): ComposeEnvironment {
  const collector = new EvaluationCollector();
  const fromFile = new Map<string, string>();
  // What a `.env` value is expanded against: the process environment, then the keys above
  // it. No prototype, so a key such as `__proto__` is a key like any other.
  const lookupEnv: Record<string, string | undefined> = Object.assign(Object.create(null), processEnv);
  const { entries, templates } = envTemplates(envText, envFile);
  entries.forEach((entry, i) => {
    let value = entry.value;
    const template = templates[i];
    if (template !== undefined) {
      try {
        value = interpolate(template, lookupEnv, collector.onUnset, collector.onRequiredMissing);
      } catch (e) {
        // Named by line and key only: the value may be a secret.
        if (e instanceof InvalidInterpolationError) {
          throw new EnvFileError(envFile, 'invalid interpolation format in the value; write a literal $ as $$', entry.line, entry.key);
        }
        throw e;
      }
    }
    fromFile.set(entry.key, value);
    if (!has(processEnv, entry.key)) lookupEnv[entry.key] = value;
  });
  const fromProcess = Object.entries(processEnv).filter((e): e is [string, string] => e[1] !== undefined);
  return { env: Object.fromEntries([...fromFile, ...fromProcess]), evaluation: collector.done() };
}

const has = (env: object, name: string): boolean => Object.prototype.hasOwnProperty.call(env, name);
