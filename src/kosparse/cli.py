"""The ``kosparse`` command: ``kosparse explain TEXT...`` and ``kosparse encode INPUT OUTPUT``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``kosparse <command> [args]``."""
    args = sys.argv[1:] if argv is None else argv
    commands = {"explain": "kosparse.explain", "encode": "kosparse.encode"}
    if not args or args[0] not in commands:
        print(f"usage: kosparse {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    import importlib

    module = importlib.import_module(commands[args[0]])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
