"""`mfftools extract`."""
import click

from mfftools.errors import MfftoolsError


@click.command("extract", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args):
    """Not available yet."""
    raise MfftoolsError("'mfftools extract' is not available yet in this version.")
