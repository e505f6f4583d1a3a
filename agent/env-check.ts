// `flotilla-agent env-check`: which variables a compose file references and
// requires, and which of them compose would find missing with the values the env
// file and the environment give it. The CLI wiring (arguments, exit code 1 when
// anything is missing) lives in main.ts.
import { readFile } from 'node:fs/promises';
import { ComposeFileError, EnvFileError } from '../renderer/core/errors.js';
import {
  COMPOSE_FILE_NAMES,
  evaluateComposeText,
  scanComposeText,
} from '../renderer/core/compose-vars.js';
import { composeEnvironment } from '../renderer/core/compose-env.js';
import { readEnvValues, type ComposeFlavour } from '../renderer/core/env-file.js';
import { composeEnv } from './compose.js';

export interface EnvCheckResult {
  /** Every name the compose file mentions, whatever the values; sorted, unique. */
  references: string[];
  /** Names compose needs whatever the values (`$X`, `${X}`, `${X:?}`, `${X?}` outside defaults); sorted, unique. */
  required: string[];
  /**
   * Names compose, given these values, would substitute blank with its "variable is not
   * set" warning or stop on as "required variable … is missing a value" (in `.env` or
   * in the compose file); sorted, unique.
   */
  missing: string[];
}

/**
 * Pure: the check on the two files' text. `processEnv` is the environment compose
 * runs with; it wins over `.env`. `flavour` says which compose reads the `.env`: a
 * value only compose v1 (python-dotenv) can hold is read as v1 reads it, and v1
 * blanks an unset name inside `.env` without a word, so only the compose file's own
 * references count there; and v1 interpolates the compose file by its own rules (no name
 * inside a default is read: compose-vars.ts interpolateV1).
 */
export function checkEnvCoverage(
  composeText: string,
  composeFile: string,
  envText: string,
  envFile: string,
  processEnv: Record<string, string | undefined> = {},
  flavour: ComposeFlavour = 'v2',
): EnvCheckResult {
  const { references, required } = scanComposeText(composeText, composeFile);
  let env: Record<string, string>;
  let fromEnvFile: string[] = [];
  if (flavour === 'v1') {
    const shell = Object.fromEntries(Object.entries(processEnv).filter((e): e is [string, string] => e[1] !== undefined));
    env = { ...Object.fromEntries(readEnvValues(envText, envFile, 'v1', shell)), ...shell };
  } else {
    const read = composeEnvironment(envText, envFile, processEnv);
    env = read.env;
    fromEnvFile = read.evaluation.missing;
  }
  const fromCompose = evaluateComposeText(composeText, composeFile, env, flavour);
  const missing = [...new Set([...fromEnvFile, ...fromCompose.missing])].sort();
  return { references, required, missing };
}

/**
 * What compose would find missing in a stack tree (path -> content) whose `.env`
 * reads `envText`, or undefined when the tree holds no compose file compose would pick.
 * @throws ComposeFileError / EnvFileError as checkEnvCoverage.
 */
export function stackMissingVariables(
  files: ReadonlyMap<string, Buffer | string>,
  envText: string,
  processEnv: Record<string, string | undefined>,
  flavour: ComposeFlavour = 'v2',
): string[] | undefined {
  const name = COMPOSE_FILE_NAMES.find((n) => files.has(n));
  if (!name) return undefined;
  return checkEnvCoverage(files.get(name)!.toString(), name, envText, '.env', processEnv, flavour).missing;
}

/**
 * Reads both files and checks them, with the environment the agent gives compose
 * (its allow-list of `processEnv`).
 * @throws ComposeFileError / EnvFileError naming the file that cannot be read or parsed.
 */
export async function envCheck(
  composePath: string,
  envPath: string,
  processEnv: Record<string, string | undefined> = process.env,
  flavour: ComposeFlavour = 'v2',
): Promise<EnvCheckResult> {
  let composeText: string;
  try {
    composeText = await readFile(composePath, 'utf8');
  } catch (e) {
    throw new ComposeFileError(composePath, '', `cannot read: ${(e as Error).message}`);
  }
  let envText: string;
  try {
    envText = await readFile(envPath, 'utf8');
  } catch (e) {
    throw new EnvFileError(envPath, `cannot read: ${(e as Error).message}`);
  }
  return checkEnvCoverage(composeText, composePath, envText, envPath, composeEnv(processEnv), flavour);
}

const sortedUnique = (names: string[]): string[] => [...new Set(names)].sort();
const jsonList = (names: string[]): string =>
  `[${sortedUnique(names).map((n) => JSON.stringify(n)).join(', ')}]`;
const textList = (names: string[]): string => (names.length ? sortedUnique(names).join(' ') : '(none)');

/**
 * `json`: exactly `{"references": [...], "required": [...], "missing": [...]}`.
 * Otherwise three aligned lines for a person. No trailing newline either way.
 */
export function formatEnvCheck(result: EnvCheckResult, json: boolean): string {
  if (json) {
    return `{"references": ${jsonList(result.references)}, "required": ${jsonList(result.required)}, "missing": ${jsonList(result.missing)}}`;
  }
  return [
    `references: ${textList(result.references)}`,
    `required:   ${textList(result.required)}`,
    `missing:    ${textList(result.missing)}`,
  ].join('\n');
}
