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
    assert "Source: Example, Feb 2025" in text


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


def test_more_shows_the_whole_entry_behind_the_last_short_answer(mini_bot):
    stdin = io.StringIO("does serverless scale with traffic\n/trend more\n")
    stdout = io.StringIO()
    console.chat(mini_bot, stdin, stdout)
    short, full = stdout.getvalue().split("\n\nServerless computing\n\n", 1)
    assert short.rstrip().endswith("More: /trend more") and "more serverless" not in short and "Tools:" not in short
    assert "Tools: AWS Lambda, Azure Functions" in full and "/trend more" not in full


def test_more_before_any_answer_says_what_to_do(mini_bot):
    stdout = io.StringIO()
    console.chat(mini_bot, io.StringIO("more\n"), stdout)
    assert "Ask a question first" in stdout.getvalue()


def test_wrapping_breaks_between_words_and_keeps_bullet_indent():
    reply = Reply(title="T", text="word " * 30 + "\n\n- " + "bullet " * 20, answered=True, kind="answer")
    out = console.render(reply, width=40)
    assert all(len(line) <= 40 for line in out.splitlines())
    assert all(not line.endswith(" ") for line in out.splitlines())
    body = [line for line in out.splitlines() if "bullet" in line]
    assert body[0].startswith("  • bullet") and all(line.startswith("    bullet") for line in body[1:])
    assert "wor\nd" not in out and " ".join(out.split()).count("word") == 30


def test_wrapping_measures_without_color_codes():
    reply = Reply(title="T", text="**" + "bold " * 20 + "**", answered=True, kind="answer")
    out = console.render(reply, color=True, width=30)
    assert all(len(console._ANSI.sub("", line)) <= 30 for line in out.splitlines())


def test_no_color_turns_color_off(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert console.wants_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not console.wants_color(Tty())
    assert not console.wants_color(io.StringIO())


def test_tab_completes_commands_topics_and_subscribe_topics(mini_bot):
    assert console.candidates(mini_bot, "/tr") == ["/trend"]
    assert console.candidates(mini_bot, "/trend t") == ["topics", "tip", "teach"]
    assert console.candidates(mini_bot, "/trend teach serverless-c") == ["serverless-cheaper"]
    assert console.candidates(mini_bot, "/trend ser") == ["serverless"]
    assert console.candidates(mini_bot, "/trend subscribe 09:00 UTC kub") == ["kubernetes"]
    assert console.candidates(mini_bot, "is serverless") == []


def test_good_and_bad_rate_the_last_answer_and_teach_works_in_the_chat(mini_kb, tmp_path):
    from bot.core import TrendBot
    from bot.learning import Learning
    from bot.sqlite_store import SQLiteStore

    with SQLiteStore(tmp_path / "t.db") as store:
        bot = TrendBot(mini_kb)
        bot.enable_learning(Learning(store))
        stdin = io.StringIO("is serverless cheaper?\n/trend bad\nbad\n/trend good\nwhat about monorepos\n"
                            "/trend teach kubernetes what about monorepos\n/trend report\n")
        stdout = io.StringIO()
        console.chat(bot, stdin, stdout)
        out = stdout.getvalue()
        assert "Helpful? /trend good or /trend bad" in out
        assert out.count("Thanks: noted.") == 1 and "You rated it that way already." in out
        assert "Thanks: your vote is changed." in out
        assert "Teach it: /trend teach ENTRY_ID what about monorepos" in out  # the person at the terminal manages it
        assert "Taught" in out and "trendbot report" in out
        (entry,) = bot.report(7).feedback
        assert (entry.helpful, entry.not_helpful) == (1, 0)


def test_a_vote_after_a_decline_does_not_rate_the_answer_before_it(mini_kb, tmp_path):
    from bot.core import TrendBot
    from bot.learning import Learning
    from bot.sqlite_store import SQLiteStore

    with SQLiteStore(tmp_path / "t.db") as store:
        bot = TrendBot(mini_kb)
        bot.enable_learning(Learning(store))
        stdin = io.StringIO("is serverless cheaper?\n/trend bad\nwhat about monorepos\n/trend good\n")
        stdout = io.StringIO()
        console.chat(bot, stdin, stdout)
        (entry,) = bot.report(7).feedback
        assert (entry.helpful, entry.not_helpful) == (0, 1)  # the first vote stands
        assert "your vote is changed" not in stdout.getvalue()
