"""trendbot's platform-neutral core: knowledge, retrieval, replies and commands."""
