"""`mfftools train`."""
import click

from mfftools.errors import MfftoolsError


@click.command("train", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args):
    """Not available yet."""
    raise MfftoolsError("'mfftools train' is not available yet in this version.")
