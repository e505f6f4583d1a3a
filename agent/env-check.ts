// `flotilla-agent env-check`: which variables a compose file references and
// requires, and which required ones an env file does not define. The CLI wiring
// (arguments, exit code 1 when anything is missing) lives in main.ts.
import { readFile } from 'node:fs/promises';
import { ComposeFileError, EnvFileError } from '../renderer/core/errors.js';
import { missingVariables, scanComposeText } from '../renderer/core/compose-vars.js';
import { definedKeys } from '../renderer/core/env-file.js';

export interface EnvCheckResult {
  /** Sorted, unique. */
  references: string[];
  /** Sorted, unique. */
  required: string[];
  /** Required names the env file does not define; sorted, unique. */
  missing: string[];
}

/** Pure: the check on the two files' text. */
export function checkEnvCoverage(
  composeText: string,
  composeFile: string,
  envText: string,
  envFile: string,
): EnvCheckResult {
  const { references, required } = scanComposeText(composeText, composeFile);
  return { references, required, missing: missingVariables(required, definedKeys(envText, envFile)) };
}

/**
 * Reads both files and checks them.
 * @throws ComposeFileError / EnvFileError naming the file that cannot be read or parsed.
 */
export async function envCheck(composePath: string, envPath: string): Promise<EnvCheckResult> {
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
  return checkEnvCoverage(composeText, composePath, envText, envPath);
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
