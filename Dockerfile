# PAI Assistant: `pai-bot migrate && pai-bot run` as a non-root user.
#
#   docker build -t pai-assistant .
#   docker run -d --name pai-bot --init --stop-timeout 30 --restart unless-stopped \
#     --env-file /etc/pai-bot/env -v /srv/pai-bot:/data pai-assistant
#
# Two stages: the first installs the project and its dependencies into a virtual
# environment with pip (a plain `pip install .`, no dev extras); the second copies
# only that environment onto a clean slim image, so the source tree and pip's build
# leftovers stay out of the image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pai-bot
WORKDIR /src
# The whole context (.dockerignore keeps out .git, .venv, .env, databases, tests):
# whatever `pip install .` ships, migrations included, is what the image gets.
COPY . .
RUN /opt/pai-bot/bin/pip install .


FROM python:3.11-slim
# A fixed uid so a host folder mounted on /data can be given to it: chown 10001:10001.
# --no-log-init: a high uid would otherwise make a large sparse /var/log/lastlog.
RUN groupadd --gid 10001 pai \
 && useradd --no-log-init --uid 10001 --gid pai --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin pai \
 && mkdir /data \
 && chown pai:pai /data \
 && chmod 0700 /data
COPY --from=build /opt/pai-bot /opt/pai-bot
# MPLCONFIGDIR: matplotlib (the /stats chart) wants a writable cache folder, and
# the image's /tmp is one even when the container's root is read-only (compose).
# MALLOC_ARENA_MAX=2: glibc gives each thread (one a SQLite connection) a memory arena
# of its own that it seldom hands back; two keep 100,000 updates at 147 MB, not 159.
ENV PATH=/opt/pai-bot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    MALLOC_ARENA_MAX=2 \
    DATABASE_URL=sqlite:////data/pai.db
USER pai
WORKDIR /data
# The SQLite file when DATABASE_URL is left as it is; unused with PostgreSQL.
VOLUME /data
# Webhook mode only: set PAI_WEBHOOK_LISTEN=0.0.0.0:8080 so the proxy can reach it.
EXPOSE 8080
# SIGTERM makes the bot stop taking updates, finish those in flight (up to about
# 10 s) and close the database: give it 30 s (`docker run --stop-timeout 30`,
# compose's stop_grace_period), more than Docker's default 10.
STOPSIGNAL SIGTERM
# No HEALTHCHECK here: the same image runs in polling mode, where nothing listens,
# and in webhook mode, where GET /healthz answers on PAI_WEBHOOK_LISTEN. A check
# baked into the image would call a polling bot unhealthy forever (or, made
# conditional, report "healthy" without checking anything); compose.yaml declares
# one for the webhook instances, where the mode and the address are known.
#
# `exec` makes `pai-bot run` replace the shell, so SIGTERM reaches the bot itself
# rather than a shell that ignores it (PID 1) until Docker kills it.
CMD ["sh", "-c", "pai-bot migrate && exec pai-bot run"]
