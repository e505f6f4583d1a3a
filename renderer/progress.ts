// A progress bar for long CLI work (publish, plan on a large fleet). Shown only to a
// person: on a TTY and outside CI. Piped output and CI logs stay as they were, so
// scripts and log readers never see carriage returns or half-drawn bars.
import cliProgress from 'cli-progress';

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): boolean;
}

export interface Progress {
  /** `done` of `total` items of `phase` are finished; `item` is the one just finished. */
  update(phase: string, done: number, total: number, item?: string): void;
  stop(): void;
}

/** CI=true (GitHub Actions, most CI systems) or any non-empty CI value other than false/0. */
export function isCi(env: Record<string, string | undefined>): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

export function progressWanted(stream: ProgressStream, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !isCi(env);
}

const QUIET: Progress = { update: () => undefined, stop: () => undefined };

export function createProgress(stream: ProgressStream, env: Record<string, string | undefined>): Progress {
  if (!progressWanted(stream, env)) return QUIET;
  let bar: cliProgress.SingleBar | undefined;
  let current = '';
  return {
    update(phase, done, total, item) {
      if (phase !== current) {
        bar?.stop();
        current = phase;
        bar = new cliProgress.SingleBar(
          {
            stream: stream as NodeJS.WritableStream,
            format: `${phase.padEnd(8)} [{bar}] {value}/{total} {item}`,
            hideCursor: true,
            clearOnComplete: false,
            // Redraw at most ~10 times a second: a thousand tenants must not mean a thousand redraws.
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, 0, { item: '' });
      }
      bar!.setTotal(total);
      bar!.update(done, { item: item ?? '' });
    },
    stop() {
      bar?.stop();
      bar = undefined;
      current = '';
    },
  };
}
