"""Shared fixtures: the small test knowledge base and bots built on it."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from bot import knowledge
from bot.core import TrendBot

MINI = Path(__file__).parent / "fixtures" / "mini"


@pytest.fixture(scope="session")
def mini_kb() -> knowledge.Knowledge:
    return knowledge.load(MINI)


@pytest.fixture
def mini_bot(mini_kb) -> TrendBot:
    return TrendBot(mini_kb, rng=random.Random(7))


@pytest.fixture(scope="session")
def shipped_kb() -> knowledge.Knowledge:
    return knowledge.load()


@pytest.fixture(scope="session")
def shipped_bot(shipped_kb) -> TrendBot:
    return TrendBot(shipped_kb, rng=random.Random(7))
