"""How the `zoo` command fails: one line on stderr, `zoo: error: ...`, and an exit status that says whose
fault it was: 2 for bad usage (an argument, a name, a path, a recipe key), 1 for work that was tried and
failed (no network, a failed upload, a bug). Never a traceback unless ZOO_DEBUG=1 asks for one."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from zoo.errors import ZooError

USAGE = 2
FAILED = 1


class ZooArgumentParser(argparse.ArgumentParser):
    """argparse, but its usage errors read like every other zoo error: `zoo: error: ...` and exit 2.
    Subparsers inherit the class (add_subparsers uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"zoo: error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (``what`` names it in --help's error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = int_at_least(1, "positive_int")  # a top-k, a batch size
non_negative_int = int_at_least(0, "non_negative_int")  # a head size, where 0 means 'features only'


def fail(message: str, code: int) -> int:
    print(f"zoo: error: {message}", file=sys.stderr)
    return code


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (the rest goes with ZOO_DEBUG=1)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def run_handler(func: Callable[..., Any], *args: Any) -> int:
    """Call a command's handler; turn whatever it raises into one message and an exit status."""
    try:
        return int(func(*args) or 0)
    except ZooError as exc:
        _debug()
        # zoo's own messages may list several bad files, one per line: keep them all
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 (a failure zoo did not foresee: still one line, exit 1)
        _debug()
        return fail(f"{type(exc).__name__}: {one_line(exc)} (run with ZOO_DEBUG=1 for the traceback)", FAILED)


def _debug() -> None:
    if os.environ.get("ZOO_DEBUG", "").strip() not in ("", "0"):
        traceback.print_exc()
