# nsm-ts: one image for every component (`nsm registry|registry-k8s|nsmgr|forwarder|nsc|nse`).
# Without a Docker engine, scripts/build-image.sh builds the same image (debootstrap + umoci).
#
# Shell and ping are busybox applets (first on PATH, and /bin/sh), so `kubectl exec … -- sh -c` and
# `ping` behave as in upstream's alpine-based images (the examples parse busybox ping's `seq=` lines);
# `ip` is iproute2 (the forwarder needs its JSON output and batch mode).

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run --silent build \
 && find dist -name '*.test.js' -delete -o -name '*.map' -delete \
 && npm ci --omit=dev --ignore-scripts

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 busybox ca-certificates fping \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /opt/busybox/bin \
 && /bin/busybox --install -s /opt/busybox/bin \
 && rm -f /opt/busybox/bin/ip /opt/busybox/bin/ipaddr /opt/busybox/bin/iplink /opt/busybox/bin/ipneigh \
          /opt/busybox/bin/iproute /opt/busybox/bin/iprule /opt/busybox/bin/iptunnel /opt/busybox/bin/tc \
          /opt/busybox/bin/nsenter \
 && ln -sf /bin/busybox /bin/sh
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /src/package.json /src/package-lock.json /opt/nsm-ts/
COPY --from=build /src/node_modules /opt/nsm-ts/node_modules
COPY --from=build /src/dist/src /opt/nsm-ts/dist/src
RUN printf '#!/bin/sh\nexec /usr/local/bin/node /opt/nsm-ts/dist/src/cli/main.js "$@"\n' > /usr/local/bin/nsm \
 && chmod 0755 /usr/local/bin/nsm \
 && nsm --version
ENV PATH=/opt/busybox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /
ENTRYPOINT ["nsm"]
