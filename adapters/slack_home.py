"""Slack views: the "Teach" modal and the App Home tab. Pure functions over plain data, no Slack library."""
from __future__ import annotations

from collections.abc import Sequence

from adapters.slack_blocks import BUTTON_LIMIT, clip, escape, inert

TEACH_VIEW = "trendbot_teach_view"  # callback_id of the Teach modal
TEACH_ENTRY, TEACH_QUESTION = "trendbot_teach_entry", "trendbot_teach_question"  # its inputs' block ids
HOME_ASK = "trendbot_home_ask"  # action_id prefix of the App Home's example questions
OPTION_LIMIT = 75  # an option's text
MAX_OPTIONS, MAX_GROUPS = 100, 100  # a static select's options per group, and groups
EXAMPLES = ("is serverless cheaper?", "k8s vs plain docker?", "what are backend devs paid?",
            "which cloud provider has the biggest market share?")


def teach_modal(question: str, groups: Sequence[tuple[str, Sequence[tuple[str, str]]]], closest: str | None,
                private_metadata: str) -> dict:
    """The modal a manager teaches from: the question (editable) and a searchable entry picker.

    `groups` are (topic title, [(entry id, label), ...]): Slack's static select filters them as
    the manager types. `closest` is preselected.
    """
    option_groups = []
    initial = None
    for title, entries in list(groups)[:MAX_GROUPS]:
        options = []
        for entry_id, label in list(entries)[:MAX_OPTIONS]:
            option = {"text": {"type": "plain_text", "text": clip(label, OPTION_LIMIT)}, "value": entry_id}
            options.append(option)
            if entry_id == closest:
                initial = option
        if options:
            option_groups.append({"label": {"type": "plain_text", "text": clip(title, OPTION_LIMIT)},
                                  "options": options})
    select = {"type": "static_select", "action_id": "entry", "option_groups": option_groups,
              "placeholder": {"type": "plain_text", "text": "Search the entries"}}
    if initial is not None:
        select["initial_option"] = initial
    return {
        "type": "modal", "callback_id": TEACH_VIEW, "private_metadata": private_metadata[:3000],
        "title": {"type": "plain_text", "text": "Teach trendbot"},
        "submit": {"type": "plain_text", "text": "Teach"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": TEACH_QUESTION, "label": {"type": "plain_text", "text": "The question"},
             "element": {"type": "plain_text_input", "action_id": "question", "initial_value": question[:300],
                         "max_length": 300}},
            {"type": "input", "block_id": TEACH_ENTRY, "label": {"type": "plain_text", "text": "Answer it with"},
             "element": select},
            {"type": "context", "elements": [{"type": "mrkdwn", "verbatim": True, "text": (
                "From then on this question, and close rewordings of it, get that entry's answer, in every "
                "channel. `trendbot learned` lists what was taught.")}]},
        ],
    }


def taught(view: dict) -> tuple[str, str]:
    """(entry id, question) from a submitted Teach modal."""
    values = (view.get("state") or {}).get("values") or {}
    entry = ((values.get(TEACH_ENTRY) or {}).get("entry") or {}).get("selected_option") or {}
    question = ((values.get(TEACH_QUESTION) or {}).get("question") or {}).get("value") or ""
    return str(entry.get("value") or ""), str(question)


def home_view(subscriptions: Sequence[tuple[str, str]], report: Sequence[str] | None) -> dict:
    """The App Home tab: what trendbot does and how to ask, example questions to press, the tip
    subscriptions this person can see (channel id, when), and for a manager the week's report."""
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": "trendbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": (
            "I answer questions about backend-development trends (serverless, microservices, cloud, DevOps, "
            "AI in the backend, APIs, security, databases, careers) from five cited articles, and say so when "
            "they don't cover something.\n\n• Send me a direct message, or mention me in a channel I'm in\n"
            "• `/trend <topic>` for a topic card, `/trend help` for the rest\n"
            "• `/trend subscribe 09:00 Europe/Berlin` for a daily tip in a channel")}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Try one:*"}},
        {"type": "actions", "block_id": "trendbot_home_examples", "elements": [
            {"type": "button", "action_id": f"{HOME_ASK}_{i}", "value": q,
             "text": {"type": "plain_text", "text": clip(q, BUTTON_LIMIT)}} for i, q in enumerate(EXAMPLES)]},
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Daily tips in your channels*\n" + (
            "\n".join(f"• <#{escape(channel)}>: {inert(when)}" for channel, when in subscriptions)
            or "None yet: `/trend subscribe` in a channel starts one.")}},
    ]
    if report is not None:
        blocks += [{"type": "divider"},
                   {"type": "section", "text": {"type": "mrkdwn", "text": "*This week (managers only)*\n" + (
                       "\n".join(f"• {inert(line)}" for line in report) or "Nothing asked yet.")}}]
    return {"type": "home", "blocks": blocks}
