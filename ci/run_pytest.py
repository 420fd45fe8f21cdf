"""Run pytest and refuse an empty run.

pytest exits 5 when it collected no test; a CI that passes on that has tested nothing, so it is an error here.
"""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5


def main(argv: list[str]) -> int:
    code = int(pytest.main(argv))
    if code == NO_TESTS_COLLECTED:
        print("error: pytest collected no tests; refusing to pass an empty run", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
