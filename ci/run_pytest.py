"""Run pytest and refuse an empty run.

pytest exits 5 when it collected no test; a CI that passes on that has tested nothing, so it is an error here.
The slowest tests are listed at the end of every run: the suite must stay under 60 minutes on two cores, and
the list says where its time goes.
"""

from __future__ import annotations

import sys

import pytest

NO_TESTS_COLLECTED = 5
SLOWEST_LISTED = 40


def main(argv: list[str]) -> int:
    if not any(arg.startswith("--durations") for arg in argv):
        argv = [*argv, f"--durations={SLOWEST_LISTED}"]
    code = int(pytest.main(argv))
    if code == NO_TESTS_COLLECTED:
        print("error: pytest collected no tests; refusing to pass an empty run", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
