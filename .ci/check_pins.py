"""CI's environment is the pinned one: every package of constraints.txt installed at its version.

    python .ci/check_pins.py

.ci/run installs with `-c constraints.txt` and runs this next, so a drifted environment shows
here, as one list, and not as an unexplained difference in the numbers (bit identity rests on
the pinned builds). It checks CI's environment, not the project: a user who drops the pins
still passes the tests.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"


def pins() -> dict[str, str]:
    out = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = pinned
    return out


def main() -> int:
    drift = {}
    for name, pinned in pins().items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have is None or have.split("+")[0] != pinned.split("+")[0]:
            drift[name] = (pinned, have)
    if drift:
        print("error: installed versions differ from constraints.txt (pinned, installed): "
              + ", ".join(f"{n} {p} != {h}" for n, (p, h) in sorted(drift.items())), file=sys.stderr)
        return 1
    print(f"every one of the {len(pins())} pinned packages is installed at its pinned version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
