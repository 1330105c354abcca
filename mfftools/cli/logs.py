"""Where the command line's log lines go, and how much of them: stderr, at the level that -v/-q
ask for, written through tqdm on a terminal so that a line never lands inside a progress bar."""
import logging

import click
from tqdm import tqdm

FORMAT = "%(levelname)s %(name)s: %(message)s"
# Where the root context keeps the verbosity flags given so far, before or after the command name.
_FLAGS = "mfftools.verbosity"


class TqdmHandler(logging.StreamHandler):
    """Writes each record with `tqdm.write`: the progress bars on the stream are cleared, the line
    is written, and the bars are drawn again below it."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own convention for a failing handler
            self.handleError(record)


def install_handler(stream, level):
    """Send every logger's records at `level` and above to `stream`, replacing earlier handlers:
    through tqdm when `stream` is a terminal (progress bars may be on it), plainly otherwise."""
    handler = TqdmHandler(stream) if stream.isatty() else logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(handlers=[handler], level=level, force=True)
    return handler


def verbosity_options():
    """Fresh -v/--verbose and -q/--quiet options, for the group and for each command: the flags
    add up wherever they are given, -v winning over -q."""
    return [
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False,
                     callback=_remember_flag, help="Log debug messages."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False,
                     callback=_remember_flag, help="Log warnings and errors only."),
    ]


def level(ctx):
    """The log level the flags given so far ask for."""
    flags = ctx.find_root().meta.get(_FLAGS, set())
    if "verbose" in flags:
        return logging.DEBUG
    return logging.WARNING if "quiet" in flags else logging.INFO


def _remember_flag(ctx, param, value):
    if value:
        ctx.find_root().meta.setdefault(_FLAGS, set()).add(param.name)
    logging.getLogger().setLevel(level(ctx))

