// The demo's compose runner when no Docker engine can run: it prints each compose
// command it would run and runs none. `services()` lists the services of the
// compose file as "running" so the agent's pass completes on files alone; the demo
// labels every line and the final table as a dry run, so nothing reads as deployed.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ComposeRunner, ComposeTarget, ServiceState } from '../agent/compose-runner.js';

export const DRY_RUN_IMAGE = '(dry run: not pulled)';

export function createDryRunCompose(print: (line: string) => void, command: string[] = ['docker-compose']): ComposeRunner {
  const say = (target: ComposeTarget, args: string[]) =>
    print(`[dry run] would run in ${target.dir}: ${[...command, '--project-name', target.project, ...args].join(' ')}`);
  return {
    async config(target) {
      say(target, ['config', '--quiet']);
    },
    async pull(target) {
      say(target, ['pull']);
    },
    async up(target) {
      say(target, ['up', '--detach', '--remove-orphans']);
    },
    async down(target) {
      say(target, ['down', '--remove-orphans']);
    },
    async services(target) {
      return composeServices(target);
    },
  };
}

/** The services of the compose file in the target dir, as the dry run pretends nothing about them but their names. */
export async function composeServices(target: ComposeTarget): Promise<ServiceState[]> {
  let text: string;
  try {
    text = await readFile(join(target.dir, 'docker-compose.yml'), 'utf8');
  } catch {
    return [];
  }
  const doc = parseYaml(text) as { services?: Record<string, unknown> } | null;
  return Object.keys(doc?.services ?? {})
    .sort()
    .map((service) => ({
      service,
      container: `${target.project}_${service}_1 (dry run)`,
      state: 'running',
      image: DRY_RUN_IMAGE,
    }));
}
