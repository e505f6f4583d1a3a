// `npm run bench`: runs every benchmark, prints one table, writes bench/results.json
// (a flat list of rows, so each benchmark adds its own figures).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { benchAgentIdleRss } from './agent-rss.bench.js';
import { formatBenchTable, type BenchRow } from './bench-row.js';
import { benchPlan } from './plan.bench.js';
import { benchNoopPoll, benchPublish } from './publish.bench.js';
import { benchRender, findRepoRoot } from './render.bench.js';

// Add a benchmark here: a name for the progress line and a function returning rows.
const BENCHMARKS: Array<[string, () => Promise<BenchRow[]>]> = [
  ['render', () => benchRender()],
  ['plan', () => benchPlan()],
  ['publish', benchPublish],
  ['no-op poll', benchNoopPoll],
  ['agent idle RSS', benchAgentIdleRss],
  ['large object', async () => (await import('./large-object.bench.js')).benchLargeObject()],
];

async function main(): Promise<void> {
  const root = findRepoRoot();
  const rows: BenchRow[] = [];
  // One at a time: benchmarks share two cores and must not time each other.
  for (const [name, run] of BENCHMARKS) {
    process.stderr.write(`bench: ${name}...`);
    const started = performance.now();
    rows.push(...(await run()));
    process.stderr.write(` ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  }
  process.stdout.write(`${formatBenchTable(rows)}\n`);
  const out = join(root, 'bench', 'results.json');
  await writeFile(out, `${JSON.stringify(rows, null, 2)}\n`);
  const missed = rows.filter((r) => !r.met).length;
  process.stderr.write(`bench: wrote ${out}${missed ? `; ${missed} target(s) not met` : ''}\n`);
}

await main();
