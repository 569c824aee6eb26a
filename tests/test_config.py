"""Settings: environment over config file over defaults, every problem listed at once, secrets masked."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot import config
from trendbot import cli, registry, wiring
from tests.discord_fake import TOKEN as DISCORD_TOKEN
from tests.slack_fake import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[1]


def load(environ: dict[str, str], path=None) -> config.Config:
    """Every setting the app reads: the core's and each platform's (the registry's)."""
    return config.load(environ, path, registry.settings())


def test_defaults_environment_and_file(tmp_path):
    f = tmp_path / "trendbot.yaml"
    f.write_text("http_port: 9100\nlog_format: json\nslack_managers: [U0ADMIN, U0OPS]\nlog_questions: true\n")
    cfg = load({"TRENDBOT_HTTP_PORT": "9200"}, f)
    assert cfg["TRENDBOT_HTTP_PORT"] == 9200 and cfg.origins["TRENDBOT_HTTP_PORT"] == "environment"  # env wins
    assert cfg["TRENDBOT_LOG_FORMAT"] == "json" and cfg.origins["TRENDBOT_LOG_FORMAT"] == "config file"
    assert cfg["TRENDBOT_SLACK_MANAGERS"] == {"U0ADMIN", "U0OPS"}
    assert cfg["TRENDBOT_LOG_QUESTIONS"] is True
    assert cfg["TRENDBOT_TIPS_CATCH_UP_HOURS"] == 6.0 and cfg.origins["TRENDBOT_TIPS_CATCH_UP_HOURS"] == "default"
    assert cfg.environ["TRENDBOT_SLACK_MANAGERS"] == "U0ADMIN,U0OPS"  # what the Slack settings read


def test_an_empty_variable_means_the_default():
    cfg = config.load({"TRENDBOT_HTTP_PORT": "", "TRENDBOT_LOG_LEVEL": ""})
    assert cfg["TRENDBOT_HTTP_PORT"] == 8080 and cfg["TRENDBOT_LOG_LEVEL"] == "info"


def test_every_problem_is_listed_at_once(tmp_path):
    f = tmp_path / "trendbot.yaml"
    f.write_text("htp_port: 80\nslack_bot_token: xoxb-in-a-file\nreload_interval: [1, 2]\n")
    with pytest.raises(config.ConfigError) as err:
        load({"TRENDBOT_HTTP_PORT": "eighty", "TRENDBOT_LOG_FORMAT": "xml", "TRENDBOT_KNOWLEDGE": str(f),
                     "TRENDBOT_RELOAD_INTERVAL": "-1", "DISCORD_GUILD_ID": "my-server"}, f)
    problems = err.value.problems
    expected = ["unknown setting 'htp_port'; did you mean http_port?", "slack_bot_token is a secret",
                "reload_interval must be a single value", "TRENDBOT_HTTP_PORT (environment): must be a port",
                "TRENDBOT_LOG_FORMAT (environment): must be one of text, json", "is not a folder",
                "TRENDBOT_RELOAD_INTERVAL (environment): must be 0 or between", "DISCORD_GUILD_ID (environment)"]
    for part in expected:
        assert sum(part in p for p in problems) == 1, (part, problems)
    assert len(problems) == len(expected)
    assert "xoxb-in-a-file" not in " ".join(problems)


@pytest.mark.parametrize("text, says", [("- a\n- b\n", "must be a mapping"), ("a: [\n", "not valid YAML at line")])
def test_a_bad_config_file_is_named(tmp_path, text, says):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load({}, f)
    (problem,) = err.value.problems
    assert str(f) in problem and says in problem


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load({}, tmp_path / "nope.yaml")
    assert "cannot read it" in err.value.problems[0]


def test_secrets_are_masked_and_their_source_shown(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text(DISCORD_TOKEN)
    cfg = load({"SLACK_BOT_TOKEN": BOT_TOKEN, "DISCORD_TOKEN_FILE": str(secret_file)})
    text = "\n".join(cfg.lines())
    assert BOT_TOKEN not in text and DISCORD_TOKEN not in text and BOT_TOKEN not in repr(cfg)
    assert re.search(r"^SLACK_BOT_TOKEN=\*{8} +# environment$", text, re.M)
    assert re.search(r"^DISCORD_TOKEN=\*{8} +# DISCORD_TOKEN_FILE$", text, re.M)
    assert re.search(r"^SLACK_APP_TOKEN= +# not set$", text, re.M)
    assert re.search(r"^TRENDBOT_HTTP_PORT=8080 +# default$", text, re.M)


def test_env_example_lists_every_variable_the_code_reads():
    listed = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert listed == {s.name for s in registry.settings()}
    read = set()
    for path in [*(ROOT / "bot").glob("*.py"), *(ROOT / "adapters").glob("*.py"), *(ROOT / "trendbot").glob("*.py")]:
        read |= set(re.findall(r"\b((?:TRENDBOT|SLACK|DISCORD)_[A-Z_]+)\b", path.read_text()))
    read = {name.removesuffix("_FILE") for name in read}
    assert read <= listed, read - listed


# -- `trendbot config` and the start-up check ------------------------------------------------------


def run_cli(monkeypatch, capsys, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    for name in [n for n in os.environ if n.startswith(("TRENDBOT_", "SLACK_", "DISCORD_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_command_prints_masked_settings(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN},
                             "config")
    assert code == 0 and not err
    assert BOT_TOKEN not in out and APP_TOKEN not in out
    assert "SLACK_APP_TOKEN=********" in out and "# platforms: slack; knowledge: shipped" in out


def test_serve_lists_every_start_up_problem_and_stops(monkeypatch, capsys, tmp_path):
    broken = tmp_path / "knowledge"
    broken.mkdir()
    (broken / "sources.yaml").write_text("sources:\n  - id: x\n")
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "DISCORD_TOKEN": "not-a-token", "TRENDBOT_HTTP_PORT": "99999",
           "TRENDBOT_KNOWLEDGE": str(broken)}
    code, out, err = run_cli(monkeypatch, capsys, env, "serve")
    assert code == 2 and not out
    lines = err.splitlines()
    assert lines[0].startswith("trendbot serve: ") and "problems in the settings" in lines[0]
    text = "\n".join(lines[1:])
    assert "TRENDBOT_HTTP_PORT (environment)" in text
    assert "Slack: SLACK_SIGNING_SECRET is not set" in text
    assert "Discord: DISCORD_TOKEN is malformed" in text
    assert "knowledge: " in text and "sources.yaml" in text
    assert BOT_TOKEN not in err and "not-a-token" not in err


def test_serve_without_any_platform_says_how_to_add_one(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, {}, "serve")
    assert code == 2 and "no platform to run: set SLACK_BOT_TOKEN" in err and "DISCORD_TOKEN" in err


def test_platform_settings_come_from_the_merged_settings(tmp_path):
    from trendbot import serve

    f = tmp_path / "c.yaml"
    f.write_text("slack_api_url: http://127.0.0.1:9/api/\nslack_port: 3999\ndiscord_guild_id: 1234\n")
    cfg = load({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                       "DISCORD_TOKEN": DISCORD_TOKEN}, f)
    found, problems = serve.platforms_from(cfg)
    assert not problems
    assert found["slack"].api_url == "http://127.0.0.1:9/api/" and found["slack"].port == 3999
    assert found["discord"].guild_id == 1234
    assert set(wiring.secrets(cfg)) == {BOT_TOKEN, SIGNING_SECRET, DISCORD_TOKEN}


def test_an_empty_variable_does_not_override_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("http_port: 9000\n")
    cfg = config.load({"TRENDBOT_HTTP_PORT": "", "TRENDBOT_DB": ""}, f)
    assert cfg["TRENDBOT_HTTP_PORT"] == 9000 and cfg.origins["TRENDBOT_HTTP_PORT"] == "config file"
    assert re.search(r"^TRENDBOT_HTTP_PORT=9000 +# config file$", "\n".join(cfg.lines()), re.M)


def test_too_frequent_a_reload_check_is_refused():
    assert config.load({"TRENDBOT_RELOAD_INTERVAL": "0"})["TRENDBOT_RELOAD_INTERVAL"] == 0
    with pytest.raises(config.ConfigError) as err:
        config.load({"TRENDBOT_RELOAD_INTERVAL": "0.0001"})
    assert "must be 0 or between 0.5 and 3600" in err.value.problems[0]


def test_slack_http_mode_and_health_cannot_share_a_port():
    from trendbot import serve

    cfg = load({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                       "TRENDBOT_SLACK_PORT": "8080"})
    _, problems = serve.platforms_from(cfg)
    assert problems == ["TRENDBOT_SLACK_PORT and TRENDBOT_HTTP_PORT are both 8080: Slack and /healthz "
                        "need ports of their own"]


def test_an_unusable_store_is_listed_with_the_other_problems(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_cli(monkeypatch, capsys, {"TRENDBOT_DB": str(blocker / "sub" / "t.db"),
                                                 "TRENDBOT_LOG_FORMAT": "xml"}, "serve")
    assert code == 2 and "3 problems" in err and "TRENDBOT_LOG_FORMAT" in err and str(blocker) in err
    assert "no platform to run" in err


def test_a_token_under_a_non_secret_name_is_not_printed(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(f"slack_api_url: {BOT_TOKEN}\n")
    cfg, _ = config.read({"TRENDBOT_HTTP_HOST": DISCORD_TOKEN}, f, registry.settings())
    text = "\n".join(cfg.lines())
    assert BOT_TOKEN not in text and DISCORD_TOKEN not in text
    assert re.search(r"^SLACK_API_URL=\*{8} \(looks like a token: not shown\) +# config file$", text, re.M)
    assert re.search(r"^TRENDBOT_HTTP_HOST=\*{8} \(looks like a token", text, re.M)
