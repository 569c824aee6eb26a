"""trendbot's app layer: the command line, the one runner, the platform registry and the wiring."""
