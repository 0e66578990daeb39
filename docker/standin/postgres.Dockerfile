# Stand-in for postgres:16 (Debian bookworm's PostgreSQL 15; docs/deployment.md, "The stand-in
# base"): the official image's first-start contract, which docker-compose.yaml relies on.
ARG ROOTFS_IMAGE=phonecheck-standin/rootfs:bookworm
FROM ${ROOTFS_IMAGE}
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh \
    && mkdir -p /docker-entrypoint-initdb.d "$PGDATA" /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql && chmod 0700 "$PGDATA"
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
