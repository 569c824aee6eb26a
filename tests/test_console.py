"""The console adapter: commands, rendering and the chat loop, driven through real streams."""
from __future__ import annotations

import io

from adapters import console
from bot.replies import Reply


def test_to_incoming_commands_and_questions():
    cmd = console.to_incoming("/trend  serverless ")
    assert cmd.is_command and cmd.text == "serverless" and cmd.platform == "console"
    q = console.to_incoming("is serverless cheaper?")
    assert not q.is_command and q.text == "is serverless cheaper?"


def test_render_plain_has_no_escape_codes(mini_bot):
    text = console.render(mini_bot.handle(console.to_incoming("/trend serverless")))
    assert "\033" not in text
    assert text.startswith("Serverless computing\n\n")
    assert "  • Pay only for what runs." in text
    assert "Tools: AWS Lambda, Azure Functions" in text
    assert "Source: Example (Feb 2025) <https://example.com/a> · as of Feb 2025" in text


def test_render_color_styles_title():
    reply = Reply(title="T", text="**b**", answered=True, kind="answer")
    out = console.render(reply, color=True)
    assert out.startswith(console.BOLD + console.CYAN + "T") and console.BOLD + "b" in out


def test_render_strips_terminal_control_sequences():
    reply = Reply(title="T\x1b]0;pwned\x07", text="a\x1b[2Jb", answered=True, kind="answer")
    out = console.render(reply)
    assert "\x1b" not in out and "\x07" not in out


def test_chat_loop_answers_each_line_until_quit(mini_bot):
    stdin = io.StringIO("is serverless cheaper?\n\n/trend kubernetes\nquit\n/trend serverless\n")
    stdout = io.StringIO()
    assert console.chat(mini_bot, stdin, stdout) == 0
    out = stdout.getvalue()
    assert "Is serverless cheaper than running servers?" in out
    assert "Kubernetes schedules and heals containers" in out
    assert "You ship functions" not in out  # after quit


def test_chat_loop_ends_on_eof(mini_bot):
    stdout = io.StringIO()
    assert console.chat(mini_bot, io.StringIO("k8s"), stdout) == 0
    assert "Kubernetes" in stdout.getvalue()
