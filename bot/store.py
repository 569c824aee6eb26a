"""The store interface: the few operations callers need, and the error every store raises.

A Store holds what must outlive a process and be shared by every process of one installation:
the reply inbox (questions recorded before they are acknowledged), daily-tip subscriptions and
the per-day tip posts, the learning loop (questions asked, votes, taught phrasings), and named
leases (which replica holds a connection only one may hold). Every "exactly once" rests on a
UNIQUE constraint in it, never on timing. bot/sqlite_store.py is the embedded default and
bot/postgres_store.py the store of replicas on several hosts, with the same schema; the app layer
(trendbot/wiring.py) picks the implementation from TRENDBOT_DB.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bot.schedule import Subscription


class StoreError(Exception):
    """The store cannot be opened or used; the message names it and the setting it came from."""


class Store(Protocol):
    """What callers may do with the store. Implementations are safe to use from several threads.

    It also keeps the installations of an app serving several workspaces, with the one-time
    states of their OAuth flow. A `team` is the workspace a row belongs to where one app serves
    several (Slack installed by OAuth), '' where a platform has one; `forget_team` deletes every
    row of one team.
    """

    def record(self, key: str, platform: str, payload: str, now: float, lease: float, team: str = "") -> str:
        """Record a question before it is acknowledged and lease it to the caller: "new" or "taken"
        (answer it), "busy" (another process is on it) or "answered" (its reply went out)."""

    def answered(self, key: str, now: float) -> None:
        """The reply went out: mark it and drop what was asked."""

    def release(self, key: str) -> None:
        """Give the lease back so a later replay pass may try again."""

    def pending(self, platform: str, now: float, since: float, lease: float, limit: int = 50) -> list[tuple[str, str]]:
        """Unanswered questions received after `since` whose lease ran out, each now leased to the caller."""

    def subscribe(self, sub: Subscription, now: float | None = None) -> None:
        """Create or replace a channel's subscription (and reactivate it), with the team it belongs to."""

    def unsubscribe(self, platform: str, channel_id: str) -> bool:
        """Remove a channel's subscription; False if it had none."""

    def subscription(self, platform: str, channel_id: str) -> Subscription | None:
        """A channel's subscription, active or not."""

    def subscriptions(self, active_only: bool = True) -> list[Subscription]:
        """Every subscription, by platform and channel."""

    def claim_post(self, platform: str, channel_id: str, local_date: str, now: float, stale_after: float) -> bool:
        """Claim one channel's post for one local date; True for exactly one caller (a stale unsent claim may be re-taken)."""

    def mark_sent(self, platform: str, channel_id: str, local_date: str, tip_id: str, now: float) -> None:
        """Record that the claimed post went out, with the tip it carried; clears failures."""

    def release_post(self, platform: str, channel_id: str, local_date: str) -> None:
        """Give up an unsent claim so a later pass can try again."""

    def record_failure(self, platform: str, channel_id: str, deactivate_after: int) -> bool:
        """Count a permanent posting failure; True when it deactivated the subscription."""

    def sent_tips(self, platform: str, channel_id: str) -> list[tuple[str, str]]:
        """(local date, tip id) of every tip posted in a channel, oldest first."""

    def posted_on(self, platform: str, channel_id: str, local_date: str) -> bool:
        """Whether the post for that local date went out."""

    def record_question(self, platform: str, channel_id: str, asked_at: float, entry_id: str | None,
                        answered: bool, score: float, question: str, team: str = "") -> int:
        """One question answered or declined (the text may be ''); its id is what a feedback button names."""

    def vote(self, asked_id: int, voter: str, helpful: bool, now: float) -> str:
        """One person's vote on one answer, changeable: "new", "changed", "same" or "unknown"."""

    def questions(self, since: float, team: str | None = None) -> list[tuple]:
        """(id, platform, channel_id, asked_at, entry_id, answered, score, question) asked since `since`
        (in one team only, when given)."""

    def votes(self, since: float, team: str | None = None) -> list[tuple]:
        """(asked_id, entry_id, helpful, question) of the votes cast since `since` (on one team's answers only,
        when given)."""

    def forget_before(self, before: float) -> int:
        """Delete the questions asked before `before`, and their votes."""

    def teach(self, entry_id: str, phrasing: str, now: float, by: str) -> bool:
        """Add a learned phrasing; False if the entry has it already."""

    def unteach(self, entry_id: str, phrasing: str) -> bool:
        """Take a learned phrasing back; False if there was none."""

    def learned(self) -> list[tuple[str, str, int]]:
        """(entry id, phrasing, added at) of every learned phrasing."""

    def lease(self, name: str, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the named lease for `holder` until now + ttl; True if `holder` has it now."""

    def release_lease(self, name: str, holder: str) -> None:
        """Give the named lease up if `holder` has it."""

    def lease_holder(self, name: str, now: float) -> str | None:
        """Who holds the named lease now, if anyone."""

    def save_installation(self, platform: str, team: str, data: str, now: float) -> None:
        """Create or replace one team's installation; `data` is the adapter's record of it, tokens included."""

    def installation(self, platform: str, team: str) -> str | None:
        """One team's installation as it was saved, or None."""

    def delete_installation(self, platform: str, team: str) -> bool:
        """Delete one team's installation (its tokens) and nothing else; False if there was none."""

    def forget_team(self, platform: str, team: str) -> int:
        """Delete everything kept for one team, in one transaction: its installation, its channels'
        subscriptions and tip posts, its inbox rows, its questions and their votes. Returns the rows deleted."""

    def use_state(self, state: str, now: float, expires_at: float) -> bool:
        """Use a one-time state (an OAuth flow's) up: True the first time, for one caller only, False ever
        after; it need not be kept past `expires_at` (its issuer refuses it by then)."""

    def meta(self, name: str, default: Callable[[], str]) -> str:
        """A value the store keeps for itself, made with `default()` the first time."""

    def close(self) -> None:
        """Release the connection(s)."""
