"""`mfftools demo`."""
import click

from mfftools.errors import MfftoolsError


@click.command("demo", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args):
    """Not available yet."""
    raise MfftoolsError("'mfftools demo' is not available yet in this version.")
