# trendbot in one container: `trendbot serve` runs Slack and/or Discord (whichever tokens it is given)
# and the daily tips, answers GET /healthz, /livez, /readyz and /metrics on 8080, and keeps its SQLite
# store in /data.
#
#   docker build -t trendbot .
#   docker run -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN -v trendbot-data:/data -p 8080:8080 trendbot
#
# tests/test_dockerfile.py checks this file against README.md, and runs its CMD and HEALTHCHECK
# with its ENV from a wheel in a fresh virtualenv (no Docker needed).

# The base image of both stages, pinned by digest: a rebuild gets the same Python and Debian until this
# line changes (README.md, "Running it in Docker", says how to update it). Bookworm rather than trixie:
# trixie moved legacy zone names such as US/Central out of its tzdata package (into tzdata-legacy);
# the tzdata package from PyPI has them too, but the image need not rest on that alone.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---- build: pip and the build backend (hatchling) stay in this stage; only the virtualenv moves on.
FROM ${PYTHON_IMAGE} AS build

# A virtualenv is one self-contained folder, so the runtime stage takes it whole with one COPY.
# Its python points at the base image's interpreter, which is why both stages use the same base.
RUN python -m venv /opt/venv

WORKDIR /src
# .dockerignore lets in only what the wheel is built from (pyproject.toml, README.md, LICENSE, bot/,
# adapters/, trendbot/, knowledge/) and constraints.txt: no .git, no virtualenvs, no caches, no local
# databases or .env files.
COPY . .

# The README's install step, `pip install -c constraints.txt .`. It builds the wheel, and the wheel carries
# the knowledge base as bot/_knowledge (pyproject force-includes knowledge/), so the image needs no other
# copy of it. constraints.txt pins every runtime dependency, and theirs, to an exact version: a rebuild
# installs what was tested, not whatever is newest that day. Every dependency ships binary wheels for
# CPython 3.11 on x86-64 and arm64 Linux: no compiler needed.
# --no-cache-dir: a pip cache would only make this layer bigger.
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

# ---- runtime: the same slim Python plus the virtualenv; no pip cache, no sources, no build tools.
FROM ${PYTHON_IMAGE}

# A fixed, numeric, unprivileged user: files in the volume keep their owner across rebuilds, and
# Kubernetes' runAsNonRoot can check a numeric USER. /data is created here, owned by that user and
# before the VOLUME line, so a new named volume mounted there starts out writable by it.
RUN groupadd --gid 10001 trendbot \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin trendbot \
 && install -d -o trendbot -g trendbot -m 0750 /data

# Owned by root and so read-only to the bot; pip compiled the bytecode at install time.
COPY --from=build /opt/venv /opt/venv

# PATH: `trendbot` and `python` are the virtualenv's. TRENDBOT_DB: the store (daily-tip subscriptions,
# answered Slack events) lives in the volume and survives a new container; so does TRENDBOT_CACHE_DIR, the
# built index, so a new container loads it instead of fitting it again (the user has no home folder to cache
# in). TRENDBOT_LOG_FORMAT=json: logs as JSON, for log collectors. PYTHONUNBUFFERED: output reaches
# `docker logs` at once.
# PYTHONDONTWRITEBYTECODE: the virtualenv is not writable for the bot anyway.
ENV PATH=/opt/venv/bin:$PATH \
    TRENDBOT_DB=/data/trendbot.db \
    TRENDBOT_CACHE_DIR=/data/cache \
    TRENDBOT_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

VOLUME /data

# 8080: GET /healthz, /livez, /readyz and /metrics (TRENDBOT_HTTP_PORT). 3000: Slack's HTTP mode,
# POST /slack/events (TRENDBOT_SLACK_PORT). Slack's Socket Mode and Discord connect outwards and need no port.
EXPOSE 8080 3000

USER 10001:10001

# The slim image has no curl, so python's urllib fetches /healthz. A 503 (knowledge not loaded, or no
# platform connected) or no answer at all raises, and python exits 1: unhealthy. Shell form, so that
# ${TRENDBOT_HTTP_PORT:-8080} follows a port set with `docker run -e`. start-period covers loading the
# knowledge and connecting to the platforms. (Docker only reports an unhealthy container; under Kubernetes,
# probe /livez for liveness, which stays 200 while a platform reconnects, and /readyz for readiness.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:${TRENDBOT_HTTP_PORT:-8080}/healthz', timeout=4).status != 200)"

# Exec form: trendbot is PID 1 and gets `docker stop`'s SIGTERM itself (a shell in between would not
# pass it on); it exits 0 within 10 s, inside docker stop's default grace period. CMD rather than
# ENTRYPOINT, so `docker run --rm trendbot trendbot ask "k8s"` runs any other trendbot command.
CMD ["trendbot", "serve"]
