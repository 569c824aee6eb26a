"""Discord's slash commands as discord.py registers them, each answered by the client, and the
time zones /subscribe offers."""
from __future__ import annotations

import functools
from typing import Protocol

import discord
from discord import app_commands

from bot.schedule import zone_names


Choices = list[app_commands.Choice[str]]


class CommandHandler(Protocol):
    """What the commands call on the client (DiscordClient in adapters/discord_app.py): answer, autocomplete."""

    async def answer_interaction(self, interaction: discord.Interaction) -> None: ...

    async def topic_choices(self, interaction: discord.Interaction, current: str) -> Choices: ...

    async def zone_choices(self, interaction: discord.Interaction, current: str) -> Choices: ...

    async def topics_choices(self, interaction: discord.Interaction, current: str) -> Choices: ...

    async def entry_choices(self, interaction: discord.Interaction, current: str) -> Choices: ...


@functools.cache
def _zones() -> tuple[str, ...]:
    return tuple(z for z in zone_names() if not z.startswith(("Etc/", "SystemV/")))


def zone_choices(current: str, limit: int = 25) -> list[str]:
    """Up to `limit` IANA zones for what was typed: UTC first when nothing is, then city matches before area ones."""
    typed = "_".join(current.strip().lower().split())
    if not typed:
        return ["UTC", *_zones()[:limit - 1]]
    city = [z for z in _zones() if z.lower().rsplit("/", 1)[-1].startswith(typed)]
    rest = [z for z in _zones() if typed in z.lower() and z not in city]
    head = ["UTC"] if "utc".startswith(typed) else []
    return (head + city + rest)[:limit]


def slash_commands(client: CommandHandler) -> list[app_commands.Command]:
    """/trend, /ask, /tip and the daily-tip commands, answered by `client`.

    /subscribe and /unsubscribe are shown by default only to members with Manage Channels (a
    server can change that under Integrations); the core checks the permission again.
    """

    @app_commands.command(name="trend", description="A backend trend's topic card (or: help, topics, tip, sources)")
    @app_commands.describe(topic="Start typing to pick a topic")
    async def trend(interaction: discord.Interaction, topic: str | None = None) -> None:
        await client.answer_interaction(interaction)

    @trend.autocomplete("topic")
    async def topic_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await client.topic_choices(interaction, current)

    @app_commands.command(name="ask", description="Ask a question about backend-development trends")
    @app_commands.describe(question="For example: is serverless cheaper?")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await client.answer_interaction(interaction)

    @app_commands.command(name="tip", description="A random backend-development tip")
    async def tip(interaction: discord.Interaction) -> None:
        await client.answer_interaction(interaction)

    @app_commands.command(name="subscribe", description="A daily backend tip in this channel (needs Manage Channels)")
    @app_commands.describe(time="24-hour HH:MM, default 09:00", zone="Time zone, e.g. Europe/Berlin; default UTC",
                           topics="Only these topics, separated by spaces; default all")
    @app_commands.default_permissions(manage_channels=True)
    async def subscribe(interaction: discord.Interaction, time: str | None = None, zone: str | None = None,
                        topics: str | None = None) -> None:
        await client.answer_interaction(interaction)

    @subscribe.autocomplete("zone")
    async def zone_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await client.zone_choices(interaction, current)

    @subscribe.autocomplete("topics")
    async def topics_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await client.topics_choices(interaction, current)

    @app_commands.command(name="unsubscribe", description="Stop this channel's daily tips (needs Manage Channels)")
    @app_commands.default_permissions(manage_channels=True)
    async def unsubscribe(interaction: discord.Interaction) -> None:
        await client.answer_interaction(interaction)

    @app_commands.command(name="subscription", description="This channel's daily tip: time, zone, topics, next post")
    async def subscription(interaction: discord.Interaction) -> None:
        await client.answer_interaction(interaction)

    @app_commands.command(name="teach", description="Teach trendbot a question it declined (Manage Server or Channels)")
    @app_commands.describe(entry="The entry that answers it: start typing to search", question="The question, as asked")
    @app_commands.default_permissions(manage_guild=True)
    async def teach(interaction: discord.Interaction, entry: str, question: str) -> None:
        await client.answer_interaction(interaction)

    @teach.autocomplete("entry")
    async def entry_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await client.entry_choices(interaction, current)

    @app_commands.command(name="report", description="What people asked and didn't get this week (managers)")
    @app_commands.default_permissions(manage_guild=True)
    async def report(interaction: discord.Interaction) -> None:
        await client.answer_interaction(interaction)

    return [trend, ask, tip, subscribe, unsubscribe, subscription, teach, report]
