"""The container image, without Docker: the Dockerfile agrees with README.md, and its CMD and HEALTHCHECK work.

The Dockerfile and .dockerignore are parsed here. The image's command is then run the way the image
runs it: from a wheel built out of the files .dockerignore lets into the build context, installed in
a fresh virtualenv, with the Dockerfile's ENV (its paths moved under tmp_path), against the Slack fake.
"""
from __future__ import annotations

import itertools
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.slack_fake import BOT_TOKEN, SIGNING_SECRET, FakeSlack, post

pytestmark = pytest.mark.slow  # every test here starts a process or builds a wheel

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Running it in Docker"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the python image's PATH
# pip options that change how pip runs, not what it installs
DEBIAN_RELEASES = {"buster", "bullseye", "bookworm", "trixie", "forky"}
QUIET_PIP_OPTIONS = {"--no-cache-dir", "--disable-pip-version-check", "-q", "--quiet", "--no-input"}


# -- the Dockerfile --------------------------------------------------------------------------------


@dataclass
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of its logical line."""

    name: str
    args: str


@dataclass
class Stage:
    """One FROM stage and its instructions, in order."""

    base: str  # the image, with the ARGs declared before the first FROM expanded
    alias: str
    instructions: list[Instruction] = field(default_factory=list)
    written: str = ""  # the image as the FROM line writes it (`${PYTHON_IMAGE}`)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.all(name)
        return found[-1] if found else None

    def index(self, instruction: Instruction) -> int:
        return next(n for n, i in enumerate(self.instructions) if i is instruction)

    def env(self) -> list[tuple[str, str]]:
        """The ENV pairs in order, values unexpanded (`$PATH` stays as written)."""
        pairs = []
        for inst in self.all("ENV"):
            words = shlex.split(inst.args)
            if "=" not in words[0]:  # the old `ENV KEY value with spaces` form
                key, _, value = inst.args.strip().partition(" ")
                pairs.append((key, value.strip()))
                continue
            for word in words:
                key, sep, value = word.partition("=")
                assert sep, f"ENV {inst.args!r}: {word!r} is not KEY=value"
                pairs.append((key, value))
        return pairs

    def volumes(self) -> list[str]:
        """The VOLUME paths (JSON or space-separated form)."""
        paths = []
        for inst in self.all("VOLUME"):
            paths += json.loads(inst.args) if inst.args.startswith("[") else inst.args.split()
        return paths

    def workdir_at(self, position: int) -> str:
        """The WORKDIR in effect at instruction `position`."""
        cwd = "/"
        for inst in self.instructions[:position]:
            if inst.name == "WORKDIR":
                cwd = posixpath.normpath(posixpath.join(cwd, inst.args.strip()))
        return cwd


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile (default escape character; comment lines dropped, as Docker does)."""
    stages: list[Stage] = []
    global_args: dict[str, str] = {}  # the ARGs before the first FROM, which only FROM lines see
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also between continued lines
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        name, _, args = logical.partition(" ")
        logical = ""
        name, args = name.upper(), args.strip()
        if name == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform=")]
            alias = words[2] if len(words) == 3 and words[1].lower() == "as" else ""
            stages.append(Stage(expand(words[0], global_args), alias, written=words[0]))
        elif stages:
            stages[-1].instructions.append(Instruction(name, args))
        else:
            assert name == "ARG", f"{name} before the first FROM"
            key, _, default = args.partition("=")
            global_args[key.strip()] = default.strip()
    assert not logical, "the Dockerfile ends inside a continued line"
    return stages


def exec_or_shell(args: str) -> list[str]:
    """CMD/RUN/HEALTHCHECK CMD arguments as an argv: the JSON exec form, or /bin/sh -c for the shell form."""
    if args.startswith("["):
        argv = json.loads(args)
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
        return argv
    return ["/bin/sh", "-c", args]


def healthcheck(stage: Stage) -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK's options (--timeout=5s -> {"timeout": "5s"}) and its command as an argv."""
    inst = stage.last("HEALTHCHECK")
    assert inst is not None, "the runtime stage has no HEALTHCHECK"
    m = re.fullmatch(r"((?:--[\w-]+=\S+\s+)*)CMD\s+(.+)", inst.args, re.IGNORECASE | re.DOTALL)
    assert m, f"HEALTHCHECK {inst.args!r} is not `HEALTHCHECK [OPTIONS] CMD command`"
    options = dict(o[2:].split("=", 1) for o in m.group(1).split())
    return options, exec_or_shell(m.group(2).strip())


def seconds(duration: str) -> float:
    """A Docker duration such as 5s, 1m30s or 500ms, in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[u] for n, u in parts)


def expand(value: str, env: dict[str, str]) -> str:
    """$VAR, ${VAR} and ${VAR:-default} as Docker expands them in ENV."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        default = m.group(3)
        got = env.get(name, "")
        return got if got or default is None else default

    return re.sub(r"\$(?:([A-Za-z_]\w*)|\{([A-Za-z_]\w*)(?::-([^}]*))?\})", one, value)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runtime(stages) -> Stage:
    return stages[-1]


# -- shell commands (README blocks, RUN lines) -------------------------------------------------------


def simple_commands(script: str) -> list[list[str]]:
    """Each simple command of a shell script as an argv, without leading VAR=value assignments.

    Enough shell for README snippets and RUN lines: continued lines, comments, quotes, and the
    separators && || ; | &.
    """
    commands: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        current: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set(";&|"):
                while current and re.fullmatch(r"[A-Za-z_]\w*=.*", current[0]):
                    current.pop(0)
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def pip_install_args(argv: list[str]) -> list[str] | None:
    """The arguments after `install` when argv is `[...]/pip install ...` or `python -m pip install ...`."""
    prog = posixpath.basename(argv[0])
    if re.fullmatch(r"pip3?(\.\d+)?", prog) and argv[1:2] == ["install"]:
        return argv[2:]
    if re.fullmatch(r"python3?(\.\d+)?", prog) and argv[1:4] == ["-m", "pip", "install"]:
        return argv[4:]
    return None


def what_is_installed(args: list[str]) -> list[str]:
    """A pip install's arguments without the options that only change how pip runs."""
    return [a for a in args if a not in QUIET_PIP_OPTIONS]


def constraint_files(args: list[str]) -> list[str]:
    """The files a pip install's `-c FILE`, `--constraint FILE` or `--constraint=FILE` name."""
    files = [a.partition("=")[2] for a in args if a.startswith("--constraint=")]
    files += [b for a, b in zip(args, args[1:]) if a in ("-c", "--constraint")]
    return files


def image_install(stages: list[Stage]) -> tuple[Stage, Instruction, list[str]]:
    """The Dockerfile's one pip install: its stage, its RUN and its argv."""
    installs = [(stage, inst, argv) for stage in stages for inst in stage.all("RUN")
                for argv in simple_commands(inst.args) if pip_install_args(argv) is not None]
    assert len(installs) == 1, f"one pip install in the Dockerfile, found {len(installs)}"
    return installs[0]


def pins() -> dict[str, Version]:
    """constraints.txt: each package's canonical name and its pinned version."""
    pinned: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)", line)
        assert m, f"constraints.txt: {line!r} is not NAME==VERSION"
        name = canonicalize_name(m.group(1))
        assert name not in pinned, f"constraints.txt pins {name} twice"
        pinned[name] = Version(m.group(2))
    return pinned


def readme_docker_commands() -> list[list[str]]:
    """The simple commands of the ```sh blocks in README.md's Docker section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert SECTION in lines, f"README.md has no {SECTION!r} section"
    body, fenced = [], False
    for line in lines[lines.index(SECTION) + 1:]:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            break
        body.append(line)
    blocks = re.findall(r"^```sh\n(.*?)^```", "\n".join(body) + "\n", re.MULTILINE | re.DOTALL)
    assert blocks, f"README.md's {SECTION!r} has no ```sh block"
    return [argv for block in blocks for argv in simple_commands(block)]


# -- .dockerignore ----------------------------------------------------------------------------------


def _pattern(text: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    text = posixpath.normpath(text.lstrip("/"))
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        elif text[i] == "[":
            end = text.index("]", i + 1)
            body = text[i + 1:end]
            out, i = out + "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]", end + 1
        elif text[i] == "\\" and i + 1 < len(text):
            out, i = out + re.escape(text[i + 1]), i + 2
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class Rule:
    """One .dockerignore line."""

    exception: bool  # a `!pattern` line: sends what earlier lines left out
    text: str
    regex: re.Pattern


def dockerignore() -> list[Rule]:
    """The rules of .dockerignore, in order."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            text = line.lstrip("!").strip()
            rules.append(Rule(line.startswith("!"), text, _pattern(text)))
    return rules


def ignored(rel: str, rules: list[Rule]) -> bool:
    """Whether Docker leaves `rel` (a path relative to the context) out, as moby's patternmatcher decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]  # the path, then its parents
    result = False
    for rule in rules:
        if any(rule.regex.fullmatch(c) for c in candidates):
            result = not rule.exception
    return result


def build_context(root: Path, rules: list[Rule]) -> list[str]:
    """The files under root that `docker build root` sends, relative and sorted."""
    def may_send_inside(folder: str) -> bool:  # can a `!` line reach below an ignored folder?
        return any(r.exception and (re.search(r"[*?\[]", r.text) or r.text.lstrip("/").startswith(folder + "/"))
                   for r in rules)

    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not ignored(prefix + d, rules) or may_send_inside(prefix + d)]
        files += [prefix + f for f in filenames if not ignored(prefix + f, rules)]
    return sorted(files)


# -- the image's definition -----------------------------------------------------------------------


def test_two_stages_on_the_same_slim_python(stages):
    assert len(stages) >= 2, "a build stage and a runtime stage"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    minimum = tuple(int(n) for n in re.fullmatch(r">=\s*(\d+)\.(\d+)", requires).groups())
    for stage in stages:
        m = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?(?:@sha256:[0-9a-f]{64})?", stage.base)
        assert m, f"FROM {stage.base}: not a slim Python image"
        assert tuple(map(int, m.groups())) >= minimum, f"FROM {stage.base}: pyproject requires Python {requires}"
    # the virtualenv copied from the build stage points at the base image's interpreter
    assert stages[0].base == stages[-1].base


def test_both_stages_use_one_base_image_pinned_by_digest(stages):
    written = {stage.written for stage in stages}
    assert len(written) == 1 and re.fullmatch(r"\$\{?[A-Za-z_]\w*\}?", written.pop()), \
        "every FROM names the base image through one ARG, so the stages cannot drift apart"
    (base,) = {stage.base for stage in stages}
    m = re.fullmatch(r"python:[\d.]+-slim-(\w+)@sha256:([0-9a-f]{64})", base)
    assert m, f"FROM {base}: want python:X.Y-slim-RELEASE@sha256:<64 hex digits>"
    assert m.group(1) in DEBIAN_RELEASES, f"{m.group(1)} is not a Debian release name"
    # README.md says which image the digest is and how to update it
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert m.group(2) in readme and base.split("@")[0] in readme
    assert f"docker buildx imagetools inspect {base.split('@')[0]}" in readme


def test_the_runtime_stage_runs_as_a_fixed_unprivileged_user(runtime):
    user = runtime.last("USER")
    assert user is not None, "the runtime stage would run as root"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user.args}: want a fixed, numeric, non-system uid"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {user.args}: the group must not be root"
    creates = [r for r in runtime.all("RUN") if re.search(rf"(useradd|adduser)\b.*--uid[= ]{uid}\b", r.args)]
    assert creates, f"no RUN creates the user with uid {uid}"


def test_the_store_is_in_a_volume_the_user_can_write(runtime):
    db = dict(runtime.env()).get("TRENDBOT_DB")
    assert db and posixpath.isabs(db), "ENV TRENDBOT_DB must put the store at an absolute path"
    volumes = runtime.volumes()
    data = posixpath.dirname(db)
    volume = next((v for v in volumes if data == v or data.startswith(v.rstrip("/") + "/")), None)
    assert volume, f"TRENDBOT_DB={db} is not in a VOLUME ({volumes})"
    # Docker copies the image's folder, owner included, into a new named volume; changes made after
    # the VOLUME line are thrown away, so the folder must be made the user's before it.
    volume_at = runtime.index(runtime.last("VOLUME"))
    owned = [r for r in runtime.instructions[:volume_at] if r.name == "RUN" and volume in r.args
             and (re.search(r"\bchown\b", r.args) or re.search(r"\binstall\b.*\s-o\s", r.args))]
    assert owned, f"no RUN before VOLUME gives {volume} to the bot's user"


def test_ports_healthcheck_and_command(runtime):
    exposed = {p.split("/")[0] for inst in runtime.all("EXPOSE") for p in inst.args.split()}
    assert {"8080", "3000"} <= exposed  # /healthz and /metrics; Slack's HTTP mode
    options, argv = healthcheck(runtime)
    command = " ".join(argv)
    assert "/healthz" in command and "${TRENDBOT_HTTP_PORT:-8080}" in command
    assert argv[0] == "/bin/sh", "shell form, so that the port follows TRENDBOT_HTTP_PORT"
    assert seconds(options.get("timeout", "30s")) <= 30
    cmd = runtime.last("CMD")
    assert cmd is not None and cmd.args.startswith("["), "CMD in exec form, so trendbot itself gets SIGTERM"
    assert exec_or_shell(cmd.args) == ["trendbot", "serve"]
    assert runtime.last("ENTRYPOINT") is None


def test_the_image_installs_the_project_as_the_readme_does(stages, runtime):
    stage, run, argv = image_install(stages)
    readme = [pip_install_args(a) for a in readme_docker_commands() if pip_install_args(a) is not None]
    assert readme, f"README.md's {SECTION!r} shows no pip install"
    assert {tuple(what_is_installed(a)) for a in readme} == {tuple(what_is_installed(pip_install_args(argv)))}

    # `.` is the build context: a COPY of it lands in the WORKDIR that pip install runs in
    at = stage.index(run)
    copies = [c for c in stage.instructions[:at] if c.name == "COPY" and c.args.split()[:1] == ["."]]
    assert copies, "the build stage never copies the build context"
    dest = copies[-1].args.split()[-1]
    assert posixpath.normpath(posixpath.join(stage.workdir_at(stage.index(copies[-1])), dest)) == stage.workdir_at(at)

    # the pip that installs is a virtualenv's, which the runtime stage copies and puts first on PATH
    pip = argv[0]
    venv = posixpath.dirname(posixpath.dirname(pip))
    assert stage is not runtime and posixpath.isabs(pip) and venv != "/", f"{pip}: not a virtualenv's pip"
    made = [a for r in stage.all("RUN") for a in simple_commands(r.args)
            if re.fullmatch(r"python3?(\.\d+)?", posixpath.basename(a[0])) and a[1:3] == ["-m", "venv"]
            and a[-1] == venv]
    assert made, f"the build stage does not create the virtualenv {venv}"
    copied = [c.args.split() for c in runtime.all("COPY") if c.args.startswith("--from=")]
    assert [f"--from={stage.alias or stages.index(stage)}", venv, venv] in copied
    path = expand(dict(runtime.env())["PATH"], {"PATH": BASE_PATH})
    assert path.split(":")[0] == f"{venv}/bin"


def test_the_image_installs_with_the_constraints_file(stages):
    stage, run, argv = image_install(stages)
    files = constraint_files(pip_install_args(argv))
    assert files == ["constraints.txt"], f"the Dockerfile's pip install uses constraints {files}, not constraints.txt"
    assert not ignored("constraints.txt", dockerignore()), ".dockerignore keeps constraints.txt out of the build"
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert "pip freeze --exclude trendbot" in header, "constraints.txt's header says how to regenerate it"


def test_constraints_pin_every_dependency_within_its_range():
    pinned = pins()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert dependencies
    for text in dependencies:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} (pyproject.toml) is not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pinned[name]}, outside pyproject.toml's {req.specifier}"


def test_the_readme_runs_what_the_image_runs(runtime):
    cmd = exec_or_shell(runtime.last("CMD").args)
    runs = {(posixpath.basename(argv[0]), *argv[1:]) for argv in readme_docker_commands()
            if posixpath.basename(argv[0]) == "trendbot"}
    assert runs == {tuple(cmd)}, f"README.md's {SECTION!r} runs {runs}, the image runs {cmd}"


def test_dockerignore_sends_the_sources_and_nothing_else():
    rules = dockerignore()
    for path in ("pyproject.toml", "README.md", "LICENSE", "constraints.txt", "trendbot/cli.py", "adapters/slack_app.py", "knowledge/sources.yaml"):
        assert not ignored(path, rules), f"{path} is needed to build the wheel"
    for path in (".git/config", ".venv/bin/python", "venv/bin/python", ".env", "bot/.env", "trendbot.db",
                 "trendbot/__pycache__/cli.cpython-311.pyc", "build/lib/trendbot/cli.py", "dist/trendbot-0.1.0.whl",
                 "tests/test_cli.py", ".pytest_cache/v/cache/lastfailed", "knowledge/x.db-wal"):
        assert ignored(path, rules), f"{path} would be sent to the Docker daemon and could reach the image"


# -- the image's command, from a wheel -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict | None]:
    """(status, JSON body) of a GET; (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None
    except (OSError, ValueError):
        return 0, None


@pytest.fixture(scope="module")
def installed(tmp_path_factory, stages) -> Path:
    """A fresh virtualenv with trendbot installed from a wheel built out of the Docker build context,
    with the Dockerfile's pip install arguments (its constraints file among them)."""
    tmp = tmp_path_factory.mktemp("image")
    context = tmp / "context"
    sent = build_context(ROOT, dockerignore())
    for rel in sent:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, context / rel)
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = wheels.glob("trendbot-*.whl")

    # nothing the wheel is built from was left out of the context
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    expected = {f"{pkg}/{p.relative_to(ROOT / pkg).as_posix()}" for pkg in build["packages"]
                for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts}
    expected |= {f"{dest}/{p.relative_to(ROOT / src).as_posix()}" for src, dest in build["force-include"].items()
                 for p in (ROOT / src).rglob("*.yaml")}
    missing = expected - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"the wheel built from the Docker context lacks {sorted(missing)}: see .dockerignore"

    # the Dockerfile's install, run in the build stage's WORKDIR (the context): `.` is the wheel built
    # from it, and a constraints file is the context's copy
    stage, run, argv = image_install(stages)
    args = what_is_installed(pip_install_args(argv))
    constraints = set(constraint_files(args))
    args = [str(wheel) if a == "." else str(context / a) if a in constraints else a for a in args]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                         check=False, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    return venv


def test_the_constraints_are_what_the_image_installs(installed):
    out = subprocess.run([str(installed / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "trendbot"],
                         check=True, capture_output=True, text=True, timeout=120)
    got = {canonicalize_name(n): Version(v) for n, v in (line.split("==") for line in out.stdout.split())}
    pinned = pins()
    unpinned = sorted(f"{n}=={v}" for n, v in got.items() if pinned.get(n) != v)
    assert not unpinned, f"installed but not pinned (regenerate constraints.txt, see its header): {unpinned}"
    if sys.version_info[:2] == (3, 11) and sys.platform == "linux":  # where constraints.txt was resolved
        stale = sorted(f"{n}=={v}" for n, v in pinned.items() if n not in got)
        assert not stale, f"pinned in constraints.txt but no longer installed: {stale}"


def test_the_image_command_serves_and_stops_from_the_installed_wheel(installed, runtime, tmp_path):
    # The image's paths, moved here: the virtualenv it copies, and its volumes.
    venv = next(c.args.split()[-1] for c in runtime.all("COPY") if c.args.startswith("--from="))
    data = tmp_path / "data"
    data.mkdir()
    moves = {venv: str(installed), **{v: str(data) for v in runtime.volumes()}}

    def move(value: str) -> str:
        for image_path, local in moves.items():
            value = re.sub(rf"(?:^|(?<=[:=])){re.escape(image_path)}(?=/|:|$)", lambda _, to=local: to, value)
        return value

    http_port, slack_port = _free_port(), _free_port()
    work = tmp_path / "elsewhere"  # not the repository: the code and knowledge must come from the wheel
    work.mkdir()
    env = {"PATH": BASE_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8"}  # what a container starts with
    for key, value in runtime.env():
        env[key] = move(expand(value, env))
    assert env["TRENDBOT_DB"].startswith(str(data))
    assert env["TRENDBOT_CACHE_DIR"].startswith(str(data)), "the built index must be kept in the volume"

    with FakeSlack() as fake:
        env |= {"TRENDBOT_HTTP_PORT": str(http_port), "TRENDBOT_SLACK_PORT": str(slack_port),
                "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url}
        cmd = exec_or_shell(runtime.last("CMD").args)
        program = shutil.which(cmd[0], path=env["PATH"])
        assert program == str(installed / "bin" / cmd[0]), f"{cmd[0]} resolves to {program}, not the virtualenv's"
        logs = tmp_path / "output.log"
        with logs.open("wb") as out:
            proc = subprocess.Popen([program, *cmd[1:]], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            status, health = _get(f"http://127.0.0.1:{http_port}/healthz")
            while status != 200:
                assert proc.poll() is None, f"exited with {proc.returncode}:\n{logs.read_text(errors='replace')}"
                assert time.monotonic() < deadline, \
                    f"/healthz still answers {status} after 60 s:\n{logs.read_text(errors='replace')}"
                time.sleep(0.2)
                status, health = _get(f"http://127.0.0.1:{http_port}/healthz")
            assert health["status"] == "ok", health
            assert health["knowledge"]["loaded"] is True, health
            assert health["platforms"]["slack"]["connected"] is True, health
            assert list(Path(env["TRENDBOT_CACHE_DIR"]).glob("index-*.npz")), "no built index kept in the volume"
            assert [c.status for c in fake.calls if c.method == "auth.test"][:1] == [200]  # the fake it was given
            assert post(slack_port, b"{}", "application/json")[0] == 401  # Slack's HTTP mode: unsigned is refused

            options, probe_cmd = healthcheck(runtime)
            timeout = seconds(options.get("timeout", "30s"))
            probe = subprocess.run(probe_cmd, check=False, cwd=work, env=env, capture_output=True, text=True,
                                   timeout=timeout)
            assert probe.returncode == 0, probe.stderr

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, logs.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # the same health check fails once nothing answers
    probe = subprocess.run(probe_cmd, check=False, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    assert probe.returncode != 0, "the HEALTHCHECK passes with nothing listening on TRENDBOT_HTTP_PORT"
    output = logs.read_text(errors="replace")
    assert BOT_TOKEN not in output and SIGNING_SECRET not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the process logged nothing"
    for line in lines:  # TRENDBOT_LOG_FORMAT=json from the image: every line is one JSON object
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        assert isinstance(record, dict), f"not a JSON log line: {line}"
