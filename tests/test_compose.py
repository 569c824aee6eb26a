"""docker-compose.yml, read as Compose reads it (YAML, merge keys included), without Docker: two
trendbot replicas from the Dockerfile on one PostgreSQL 15, health checks, and no secret in the file."""
from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest
import yaml

from trendbot import registry

ROOT = Path(__file__).resolve().parents[1]
SECRET_KEY = re.compile(r".*(_TOKEN|_SECRET|PASSWORD)$")
# ${VAR}, or ${VAR:?message} / ${VAR?message}, which stop Compose when VAR is unset; never a default
REFERENCE = re.compile(r"\$\{[A-Za-z_]\w*(?::?\?[^}]*)?\}")


def environment(service: dict) -> dict[str, str | None]:
    """A service's environment in either of Compose's forms; None for a name given without a value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def probe(service: dict) -> str:
    """A service's health check command, as one string."""
    test = service.get("healthcheck", {}).get("test")
    assert test, "no healthcheck"
    return test if isinstance(test, str) else " ".join(test)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def replicas(compose) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_postgres_15_with_a_volume_and_a_health_check(compose):
    pg = compose["services"]["postgres"]
    assert pg["image"] == "postgres:15"
    named = set(compose.get("volumes") or {})
    mounts = [v.split(":") for v in pg["volumes"]]
    assert [m for m in mounts if m[0] in named and m[1] == "/var/lib/postgresql/data"], \
        f"the database is not in a named volume: {pg['volumes']}"
    assert "pg_isready" in probe(pg)


def test_two_replicas_of_the_image_on_the_postgres_service(compose, replicas):
    assert len(replicas) == 2, f"two trendbot replicas, found {sorted(replicas)}"
    builds = [(s["build"], s.get("image")) for s in replicas.values()]
    assert builds[0] == builds[1], f"the replicas are built differently: {builds}"
    build = builds[0][0]
    context, dockerfile = (build, "Dockerfile") if isinstance(build, str) else \
        (build.get("context", "."), build.get("dockerfile", "Dockerfile"))
    assert context == "." and dockerfile == "Dockerfile", f"not built from the Dockerfile: {build}"
    pg_user = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    pg_db = compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
    default_port = next(s.default for s in registry.settings() if s.name == "TRENDBOT_HTTP_PORT")
    published = []
    for name, service in replicas.items():
        env = environment(service)
        url = urllib.parse.urlsplit(env["TRENDBOT_DB"] or "")
        assert url.scheme == "postgresql" and url.hostname == "postgres", f"{name}: TRENDBOT_DB={url.geturl()}"
        assert url.username == pg_user and url.path == f"/{pg_db}", f"{name}: not the postgres service's database"
        assert url.password is None, f"{name}: a password in TRENDBOT_DB; PGPASSWORD carries it"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert re.search(rf"127\.0\.0\.1:{default_port}/(readyz|livez)\b", probe(service)), probe(service)
        for port in service.get("ports", []):
            host, _, container = str(port).rpartition(":")
            assert container == default_port, f"{name} publishes {port}: only the health port"
            published.append(host)
    assert len(published) == len(set(published)), f"two replicas publish one port: {published}"


def test_no_secret_is_written_in_the_file(compose):
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_KEY.match(key):
                assert value is None or REFERENCE.fullmatch(value), \
                    f"{name}: {key}={value!r}; pass it from the environment (a name only, or ${{VAR}})"
            else:
                assert value is None or not re.search(r"://[^/@\s]*:[^/@\s]*@", value), \
                    f"{name}: {key} holds a password in a URL"


def test_the_replicas_set_only_settings_trendbot_reads(replicas):
    known = {s.name for s in registry.settings()}
    for name, service in replicas.items():
        for key in environment(service):
            if key.startswith("PG"):  # libpq's own (PGPASSWORD), read by the PostgreSQL driver
                continue
            assert key in known, f"{name}: {key} is not a trendbot setting (bot/config.py, adapters' settings)"
