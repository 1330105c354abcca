"""The `mfftools` command line: one click group (group.py); each command lives in its own module.

Commands only parse options, call library functions and print. A `MfftoolsError` raised by the
library becomes a clean one-line error and a non-zero exit code.
"""
from mfftools.cli.group import main

__all__ = ["main"]
