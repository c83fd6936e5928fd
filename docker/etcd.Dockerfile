# etcd from Debian 12's etcd-server package, for docker/compose.cluster.yaml.
# The package makes the etcd user itself.
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends etcd-server \
    && rm -rf /var/lib/apt/lists/* \
    && (id etcd >/dev/null 2>&1 || useradd --system --home-dir /var/lib/etcd etcd) \
    && mkdir -p /var/lib/etcd && chown etcd /var/lib/etcd
USER etcd
ENTRYPOINT ["/usr/bin/etcd"]
