"""The `mfftools` group: version, logging options, and the clean error of a `MfftoolsError`."""
import sys

import click

from mfftools import __version__
from mfftools.cli.logs import install_handler, level, verbosity_options
from mfftools.errors import MfftoolsError


class _Group(click.Group):
    def add_command(self, cmd, name=None):
        # -v/-q after the command name too: `mfftools inst-eval x.h5 -q`
        cmd.params.extend(verbosity_options())
        super().add_command(cmd, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MfftoolsError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Group, params=verbosity_options())
@click.version_option(__version__, prog_name="mfftools")
@click.pass_context
def main(ctx):
    """Accuracy and fairness evaluation for face recognition, streamed."""
    install_handler(sys.stderr, level(ctx))


def _register():
    from mfftools.cli import (
        calibrate,
        demo,
        extract,
        ident_eval,
        inst_eval,
        pair_eval,
        report,
        synth,
        template_eval,
        train,
    )

    for module in (synth, extract, inst_eval, pair_eval, ident_eval, template_eval, calibrate,
                   train, report, demo):
        main.add_command(module.command)


_register()
