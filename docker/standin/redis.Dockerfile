# Stand-in for redis:7.2-bookworm (Debian bookworm's redis-server 7.0; docs/deployment.md, "The
# stand-in base"). The compose file gives the command (redis-server --requirepass ...).
ARG ROOTFS_IMAGE=phonecheck-standin/rootfs:bookworm
FROM ${ROOTFS_IMAGE}
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
USER redis
WORKDIR /var/lib/redis
CMD ["redis-server"]
