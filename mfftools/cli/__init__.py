"""The `mfftools` command line: one click group; each command lives in its own module.

Commands only parse options, call library functions and print. A `MfftoolsError` raised by the
library becomes a clean one-line error and a non-zero exit code.
"""
import logging

import click

from mfftools import __version__
from mfftools.errors import MfftoolsError


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MfftoolsError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="mfftools")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def main(verbose, quiet):
    """Accuracy and fairness evaluation for face recognition, streamed."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def _register():
    from mfftools.cli import demo, extract, ident_eval, inst_eval, pair_eval, report, synth, train

    for module in (synth, extract, inst_eval, pair_eval, ident_eval, train, report, demo):
        main.add_command(module.command)


_register()
