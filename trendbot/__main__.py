"""`python -m trendbot`: the same as the `trendbot` command."""
import sys

from trendbot.cli import main

sys.exit(main())
