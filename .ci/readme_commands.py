"""Print the shell lines of one README block, so CI runs exactly what README tells a user.

README.md marks the blocks CI runs with an HTML comment on the line before their fence:
``<!-- ci: install -->`` and ``<!-- ci: test -->``. Usage: ``python3 .ci/readme_commands.py install``.
Comments and blank lines are dropped; each remaining line is one command.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def commands(text: str, name: str) -> list[str]:
    """The commands of the fenced block right after ``<!-- ci: NAME -->`` in ``text``."""
    match = re.search(rf"<!-- ci: {re.escape(name)} -->\s*\n```[a-z]*\n(.*?)\n```", text, re.DOTALL)
    if match is None:
        raise SystemExit(f"README.md has no block marked <!-- ci: {name} -->")
    lines = [line.split(" #")[0].strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


if __name__ == "__main__":
    print("\n".join(commands(README.read_text(encoding="utf-8"), sys.argv[1])))
