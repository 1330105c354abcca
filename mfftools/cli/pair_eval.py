"""`mfftools pair-eval`."""
import click

from mfftools.errors import MfftoolsError


@click.command("pair-eval", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args):
    """Not available yet."""
    raise MfftoolsError("'mfftools pair-eval' is not available yet in this version.")
