// Which compose reads the install dir's `.env`: docker-compose 1.x reads it with
// python-dotenv, compose v2 (plugin or standalone) with compose-go, and the two
// need different bytes for some values (renderer/core/env-file.ts). The command
// alone does not say: `docker-compose` is v1 on Debian and v2 where the
// standalone v2 binary is installed under that name, so the version is asked.
import { composeFlavourMatters, type ComposeFlavour } from '../renderer/core/env-file.js';
import { SettingError } from '../renderer/core/errors.js';
import { composeEnv, detectComposeCommand } from './compose.js';
import { planApply, type ApplyPlan } from './apply.js';
import { runCommand } from './exec.js';

const VERSION_TIMEOUT_MS = 30_000;

/**
 * `v1` when `command version --short` says 1.x, else `v2`. Asked each time,
 * not remembered: a host may upgrade compose while the agent runs.
 * @throws SettingError('FLOTILLA_COMPOSE') when the command does not run.
 */
export async function composeFlavour(command: string[], env: Record<string, string>): Promise<ComposeFlavour> {
  const result = await runCommand([...command, 'version', '--short'], { env, timeoutMs: VERSION_TIMEOUT_MS });
  if (result.code !== 0) {
    throw new SettingError('FLOTILLA_COMPOSE', `\`${command.join(' ')} version --short\` failed (exit ${result.code}); cannot tell which compose reads .env`);
  }
  // docker-compose 1.29 prints "1.29.2"; compose v2 prints "2.29.1" or "v2.29.1".
  return /^v?1\./.test(result.stdout.trim()) ? 'v1' : 'v2';
}

/**
 * The flavour `patch` must be written into `envText` for, or undefined when v1
 * and v2 need the same bytes (then nothing is run: most patches). `command` is
 * FLOTILLA_COMPOSE when set, else the one the compose runner would detect.
 */
export async function flavourForPatch(
  envText: string | undefined,
  patch: Record<string, string>,
  command: string[] | undefined,
  env: Record<string, string | undefined>,
): Promise<ComposeFlavour | undefined> {
  if (!composeFlavourMatters(envText ?? '', patch, '.env')) return undefined;
  return hostComposeFlavour(command, env);
}

/** The flavour of `command`, or of the compose the runner would detect when it is undefined. */
export async function hostComposeFlavour(command: string[] | undefined, env: Record<string, string | undefined>): Promise<ComposeFlavour> {
  return composeFlavour(command ?? (await detectComposeCommand({ env })), composeEnv(env));
}

/**
 * planApply with the coverage judged by the host's compose. Compose v1 reads a default
 * literally (`${A:-$B}` needs no B), so before a plan refuses for missing names, the
 * installed compose is asked which it is; only then, so most applies start no process.
 */
export async function planApplyOnHost(
  input: Parameters<typeof planApply>[0],
  command: string[] | undefined,
  env: Record<string, string | undefined>,
): Promise<ApplyPlan> {
  const plan = await planApply(input);
  if (plan.coverage.missing.length === 0 || input.composeFlavour) return plan;
  return (await hostComposeFlavour(command, env)) === 'v1' ? planApply({ ...input, composeFlavour: 'v1' }) : plan;
}
