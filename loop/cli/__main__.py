"""``python -m loop.cli``."""

from loop.cli.main import main

main()
