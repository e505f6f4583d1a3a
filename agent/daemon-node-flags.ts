// How the daemon's Node is started. An idle agent is mostly V8's own overhead: by
// default four background threads (each with its own malloc arena) and a young
// generation sized for throughput. One background thread and a 1 MB semi-space cut
// ~10 MB of an idle agent's resident memory (`npm run bench` measures it), at no cost
// that matters to a process that polls once a minute and applies a few files.
// docker/agent.Dockerfile carries the same flags (a test keeps them equal). The bin's
// `#!` line does not: `env -S` is missing from busybox, and a host running the bin by
// hand gets a working agent, only a larger one.
export const DAEMON_NODE_FLAGS: readonly string[] = ['--v8-pool-size=1', '--max-semi-space-size=1'];

/** The command `flotilla-agent install` puts in the unit when not given `--agent-command`. */
export function defaultAgentCommand(nodePath: string, agentScript: string): string[] {
  return [nodePath, ...DAEMON_NODE_FLAGS, agentScript];
}
