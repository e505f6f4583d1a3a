# flotilla-agent in a container, for hosts that prefer Docker to a systemd unit.
#
#   docker build -f docker/agent.Dockerfile -t flotilla-agent .
#   docker run -d --name flotilla-agent-linda --restart on-failure \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /srv/linda:/srv/linda \
#     -v /var/lib/flotilla/linda:/var/lib/flotilla/linda \
#     -v /etc/flotilla/linda.env:/etc/flotilla/agent.env:ro \
#     flotilla-agent
#
# The install dir is mounted at the SAME path inside and outside: compose resolves
# relative bind mounts against it and passes them to the host's engine, which knows
# only host paths.
#
# WARNING: the Docker socket is root on the host. Anyone who controls this container
# (or the tenant branch it applies) can start a privileged container that mounts the
# host's / . This is no more than the systemd agent has (it runs as root and drives
# the same engine), but it is not sandboxed by being in a container. See docs/operators.md.

FROM node:20-bookworm-slim AS build
WORKDIR /opt/flotilla
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY renderer ./renderer
COPY agent ./agent
COPY bench ./bench
COPY test/support ./test/support
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# The docker CLI and compose v1 (bookworm has no compose v2 plugin); the engine is the host's, through the socket.
RUN apt-get update \
 && apt-get install -y --no-install-recommends docker.io docker-compose ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/flotilla
COPY --from=build /opt/flotilla/node_modules ./node_modules
COPY --from=build /opt/flotilla/dist ./dist
COPY package.json ./
ENV NODE_ENV=production
# One line per step on stdout/stderr: `docker logs` shows them; JSON for a log shipper.
ENTRYPOINT ["node","--v8-pool-size=1","--max-semi-space-size=1","/opt/flotilla/dist/agent/main.js"]
CMD ["run", "--settings", "/etc/flotilla/agent.env", "--log-format", "json"]
