"""`mfftools synth`."""
import click

from mfftools.errors import MfftoolsError


@click.command("synth", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args):
    """Not available yet."""
    raise MfftoolsError("'mfftools synth' is not available yet in this version.")
