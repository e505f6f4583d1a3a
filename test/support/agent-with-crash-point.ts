// The real agent CLI with a crash point, for the kill tests (agent/agent.docker.test.ts,
// test/hardening/kill-every-step.docker.test.ts):
//   node --import tsx test/support/agent-with-crash-point.ts <point> <agent args...>
// runs `flotilla-agent <agent args...>` and kills itself with SIGKILL the first time the
// apply passes <point> (one of CRASH_POINTS), as a power cut would, so the next start
// must finish or roll back from the journal. The production agent has no such hook.
import { runAgentProcess } from '../../agent/main.js';
import { CRASH_POINTS, type CrashPoint } from '../../agent/reconcile.js';

const [point, ...argv] = process.argv.slice(2);
if (!CRASH_POINTS.includes(point as CrashPoint)) {
  process.stderr.write(`usage: agent-with-crash-point.ts <${CRASH_POINTS.join('|')}> <agent args...>\n`);
  process.exit(64);
}

await runAgentProcess(argv, {
  crashAfter: (reached) => {
    if (reached === point) process.kill(process.pid, 'SIGKILL');
  },
});
