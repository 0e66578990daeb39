# Stand-in for apache/airflow:3.3.2-python3.11 on a machine without an image registry
# (docs/deployment.md, "The stand-in base"). Built by build-base.sh from a debootstrap'd Debian
# bookworm (Python 3.11 from Debian). Provides what docker/Dockerfile and docker-compose.yaml rely
# on: user airflow (uid 50000, gid 0), AIRFLOW_HOME=/opt/airflow, `python`/`pip` of the Airflow
# installation first on PATH and writable by airflow, Airflow installed with its constraints,
# curl (healthchecks), and an entrypoint for the compose commands.
ARG ROOTFS_IMAGE=phonecheck-standin/rootfs:bookworm
FROM ${ROOTFS_IMAGE}

ARG AIRFLOW_VERSION=3.3.2
ARG AIRFLOW_EXTRAS=celery,postgres,fab,http
ARG AIRFLOW_UID=50000
# pip settings of the building machine (build-base.sh reads them from its pip configuration):
# an index URL (empty = pip's default) and, in the build context, its CA bundle.
ARG PIP_INDEX_URL=
ARG PIP_DEFAULT_TIMEOUT=180

ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW_USER_HOME_DIR=/home/airflow \
    PATH=/home/airflow/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PIP_CERT=/etc/ssl/certs/standin-pip-ca.pem \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

COPY pip-ca.pem /etc/ssl/certs/standin-pip-ca.pem
COPY constraints.txt /opt/standin/constraints.txt
COPY entrypoint.sh /entrypoint
# The index URL stays in /etc/pip.conf so that docker/Dockerfile's pip, FROM this image, uses it too.
RUN chmod 0755 /entrypoint \
    && if [ -n "${PIP_INDEX_URL}" ]; then printf '[global]\nindex-url = %s\n' "${PIP_INDEX_URL}" >/etc/pip.conf; fi \
    && useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins \
    && chown -R airflow:0 /opt/airflow /home/airflow && chmod -R g+rwX /opt/airflow /home/airflow

USER airflow
# The official image installs Airflow as user packages into ~/.local; PEP 668 forbids that with
# Debian's Python, so the stand-in uses a virtual environment at the same place: ~/.local/bin
# comes first on PATH and pip run as airflow (docker/Dockerfile) installs into it. uv resolves
# and installs (a third of pip's time here), then leaves; it reads the CA bundle from
# SSL_CERT_FILE and the index from --index-url (not pip.conf).
ARG UV_VERSION=0.13.9
RUN python3 -m venv /home/airflow/.local \
    && pip install --quiet "uv==${UV_VERSION}" \
    && SSL_CERT_FILE="${PIP_CERT}" UV_HTTP_TIMEOUT="${PIP_DEFAULT_TIMEOUT}" uv pip install --quiet \
       --python /home/airflow/.local/bin/python ${PIP_INDEX_URL:+--index-url "${PIP_INDEX_URL}"} \
       "apache-airflow[${AIRFLOW_EXTRAS}]==${AIRFLOW_VERSION}" -c /opt/standin/constraints.txt \
    && pip uninstall --quiet --yes uv \
    && airflow version
WORKDIR /opt/airflow
EXPOSE 8080
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD []
