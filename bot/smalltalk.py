"""Messages that are not questions about backend trends: greetings, thanks, questions about the bot,
and the off-topic requests people try on any bot (sums, the time, the weather).

`classify(text)` names the kind, or None for a real question. Patterns match the whole message
(after chat filler such as "hey bot" is stripped), so a question that merely starts with "hi" is
still answered.
"""
from __future__ import annotations

import re

_FILLER = r"(?:hey|hi|hello|yo|ok|okay|so|um+|uh+|well|oh|ah|hmm+|@?trendbot|bot|there|buddy|mate|friend|pls|please|lol|!|\?|\.|,|:|\s)*"


def _whole(body: str) -> re.Pattern:
    return re.compile(rf"^{_FILLER}(?:{body}){_FILLER}$", re.IGNORECASE)


_KINDS: tuple[tuple[str, re.Pattern], ...] = (
    ("greeting", _whole(r"hi+|hey+|hello+|howdy|hiya|yo+|sup|wass?up|what'?s up|good (?:morning|afternoon|evening|day)"
                        r"|greetings|how are (?:you|u|ya)(?: doing| today)?|how'?s it going|how do you do|gm")),
    ("thanks", _whole(r"(?:thank you|thanks|thx|ty|tysm|cheers|much appreciated|appreciate it|thank u)(?: (?:so|very) much)?"
                      r"(?: (?:that|this) (?:helps|helped|was helpful))?|(?:that|this) (?:helps|helped|was helpful)")),
    ("praise", _whole(r"good bot|nice bot|great bot|(?:you'?re|ur|you are) (?:awesome|great|the best|cool|smart|helpful)"
                      r"|(?:nice|cool|great|awesome|perfect|neat)(?: one| stuff| thanks)?|love (?:it|this|you)|ok cool|got it|noted")),
    ("farewell", _whole(r"bye+|goodbye|good night|see (?:you|ya|u)(?: later)?|later|cya|ttyl|gotta go|that'?s all")),
    ("identity", _whole(r"who (?:are|r) (?:you|u)|what (?:are|r) (?:you|u)|what'?s your name|what is your name|your name"
                        r"|are (?:you|u) (?:a |an )?(?:bot|robot|human|real|ai|person|chatgpt|gpt)|who (?:made|built|created) (?:you|u)"
                        r"|introduce yourself|tell me about yourself")),
    ("capabilities", _whole(r"what can (?:you|u|i) (?:do|ask(?: you)?|help(?: me)? with)|what do (?:you|u) (?:do|know)"
                            r"|how (?:do|can) i use (?:you|u|this|this bot|it)|what (?:are|r) (?:you|u) (?:good|for) ?(?:for|at)?"
                            r"|how does this work|can (?:you|u) help(?: me)?|help me|what topics(?: do you know)?")),
)

# Off-topic requests that share a word with the domain ("times", "time", "cloud"): declined
# outright rather than matched against the knowledge.
_NUMBER = r"(?:\d+(?:[.,]\d+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|hundred|thousand)"
_OPERATOR = r"(?:\+|-|\*|x|×|÷|/|\^|plus|minus|times|multiplied by|divided by|over|to the power of|squared|mod)"
_ARITHMETIC = re.compile(
    rf"(?:^|\b(?:what'?s|what is|whats|calculate|compute|how much is|solve|quick math:?)\s+){_NUMBER}\s*{_OPERATOR}\s*{_NUMBER}"
    rf"|^\s*{_NUMBER}\s*{_OPERATOR}\s*{_NUMBER}\s*[=?]*\s*$|square root of \d",
    re.IGNORECASE,
)
_CLOCK = re.compile(
    r"\b(?:what(?:'s| is)? the time|what time is it|what'?s the date|what is the date|what day is (?:it|today)"
    r"|today'?s date|current (?:time|date)|time (?:is it )?(?:right )?now|what year is it|time zone is)\b",
    re.IGNORECASE,
)
_WEATHER = re.compile(
    r"\b(?:weather|forecast for (?:today|tomorrow|the weekend)|is it (?:going to )?(?:rain|snow|sunny|cold|hot)"
    r"|will it (?:rain|snow)|temperature (?:in|outside|today)|umbrella)\b",
    re.IGNORECASE,
)


def classify(text: str) -> str | None:
    """The kind of small talk or off-topic request `text` is, or None for a real question."""
    for kind, pattern in _KINDS:
        if pattern.match(text):
            return kind
    if _ARITHMETIC.search(text):
        return "arithmetic"
    if _CLOCK.search(text):
        return "clock"
    if _WEATHER.search(text) and not re.search(r"\bcloud|server|backend|api\b", text, re.IGNORECASE):
        return "weather"
    return None


# The replies: short, friendly, and pointing to what the bot is for.
REPLIES = {
    "greeting": "Hi! Ask me about backend-development trends: serverless, microservices, cloud, DevOps, "
                "AI in the backend, careers and more. Type `/trend help` to see what I can do.",
    "thanks": "You're welcome! Ask away whenever something else comes up.",
    "praise": "Thanks! Ask me anything else about backend trends, or type `/trend topics` for the list.",
    "farewell": "Bye! I'm here whenever you have a backend question.",
    "identity": "I'm trendbot: I answer questions about backend-development trends from five cited articles, "
                "and I say so when they don't cover something. Type `/trend help` to see how to use me.",
    "capabilities": "I answer questions about backend trends (serverless, microservices, cloud, DevOps, AI, APIs, "
                    "security, databases, careers) with a short answer and its source, show topic cards, and post a "
                    "daily tip. Try \"is serverless cheaper?\" or type `/trend help`.",
    "arithmetic": "I can't do sums: I only know about backend-development trends. Try \"is serverless cheaper?\"",
    "clock": "I can't tell the time or date: I only know about backend-development trends. "
             "Try \"what are backend devs paid?\"",
    "weather": "I can't check the weather: I only know about backend-development trends. "
               "Try \"k8s vs plain docker?\"",
}
