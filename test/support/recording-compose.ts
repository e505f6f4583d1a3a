// A ComposeRunner for unit tests of the apply steps: records each call with the
// files compose would read at that moment (so a test can show `config` saw the
// same tree and `.env` as `up`), and fails a chosen step the way the real runner
// does (ComposeStepError with compose's last lines).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ComposeRunner, ComposeTarget, ServiceState } from '../../agent/compose-runner.js';
import { ComposeStepError } from '../../renderer/core/errors.js';

export type ComposeOp = 'config' | 'pull' | 'up' | 'services' | 'down';

export interface ComposeCall {
  op: ComposeOp;
  dir: string;
  project: string;
  /** Content of each captured file in `dir` when the call was made; undefined when absent. */
  files: Record<string, string | undefined>;
}

export interface RecordingComposeOptions {
  /** Files (relative to the target dir) to capture at each call; default docker-compose.yml and .env. */
  capture?: string[];
  /** Steps that fail, with the output tail compose would print. */
  fail?: Partial<Record<ComposeOp, string>>;
  /** What `services` returns. */
  services?: ServiceState[];
}

export class RecordingCompose implements ComposeRunner {
  readonly calls: ComposeCall[] = [];
  private readonly capture: string[];
  fail: Partial<Record<ComposeOp, string>>;
  serviceStates: ServiceState[];

  constructor(opts: RecordingComposeOptions = {}) {
    this.capture = opts.capture ?? ['docker-compose.yml', '.env'];
    this.fail = { ...opts.fail };
    this.serviceStates = opts.services ?? [];
  }

  /** The operations in call order, e.g. `['config', 'pull', 'up']`. */
  get ops(): ComposeOp[] {
    return this.calls.map((c) => c.op);
  }

  config(target: ComposeTarget): Promise<void> {
    return this.record('config', target);
  }

  pull(target: ComposeTarget): Promise<void> {
    return this.record('pull', target);
  }

  up(target: ComposeTarget): Promise<void> {
    return this.record('up', target);
  }

  down(target: ComposeTarget): Promise<void> {
    return this.record('down', target);
  }

  async services(target: ComposeTarget): Promise<ServiceState[]> {
    await this.record('services', target);
    return this.serviceStates.map((s) => ({ ...s }));
  }

  private async record(op: ComposeOp, target: ComposeTarget): Promise<void> {
    const files: Record<string, string | undefined> = {};
    for (const name of this.capture) {
      files[name] = await readFile(join(target.dir, name), 'utf8').catch(() => undefined);
    }
    this.calls.push({ op, dir: target.dir, project: target.project, files });
    const tail = this.fail[op];
    if (tail !== undefined) throw new ComposeStepError(op, tail);
  }
}
