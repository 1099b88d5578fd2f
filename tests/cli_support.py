"""Running the CLI in-process from tests: the exit code of ``specwise.cli.main.main(argv)``."""
from __future__ import annotations

from specwise.cli.main import main


def exit_code(argv: list[str]) -> int:
    """The code the process would exit with (0 when ``main`` returns or exits without a code)."""
    try:
        main(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else int(exc.code)
    return 0
