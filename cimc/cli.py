"""The ``cimc`` command. Each stage's subcommands live beside its library code in ``cimc/<stage>/cli.py``.

Those modules expose ``COMMANDS``, a list of click commands or groups, and import heavy libraries
(torch, lhotse) inside the command bodies so that ``cimc --help`` stays fast.
"""
from __future__ import annotations

import importlib
import logging
import shlex
import sys

import click

from cimc import __version__
from cimc.utils import setup_logging

# Order is the pipeline's order; it is also the order of `cimc --help`.
COMMAND_MODULES = (
    "cimc.data.synth_cli",
    "cimc.data.cli",
    "cimc.features.cli",
    "cimc.ivector.cli",
    "cimc.cluster.cli",
    "cimc.sv.cli",
    "cimc.diar.cli",
)


class PipelineGroup(click.Group):
    """Lists subcommands in pipeline order rather than alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


HELP_OPTIONS = frozenset({"-h", "--help"})


@click.group(cls=PipelineGroup, context_settings={"help_option_names": sorted(HELP_OPTIONS)})
@click.version_option(__version__, prog_name="cimc")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def cli(verbose: bool) -> None:
    """cimc: self-supervised speaker verification with Contrastive Information Maximization Clustering.

    Recipes in egs/ call one subcommand per stage; see `cimc COMMAND --help`.
    """
    setup_logging(verbose)
    # The command line opens every log (a run's record); a help request runs nothing and gets no log line.
    if not HELP_OPTIONS.intersection(sys.argv[1:]):
        logging.getLogger("cimc").info("command: %s", shlex.join(sys.argv))


def _register_commands(group: click.Group) -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        for command in module.COMMANDS:
            group.add_command(command)


_register_commands(cli)


def main() -> None:
    """Console entry point (``cimc``).

    A bad input, config or file (ValueError, including ConfigError, or OSError) ends with its message as one
    ERROR log line and exit status 1; ``cimc -v`` shows the traceback too.
    """
    try:
        cli(prog_name="cimc")
    except (ValueError, OSError) as err:
        if logging.getLogger().isEnabledFor(logging.DEBUG):  # -v
            raise
        logging.getLogger("cimc").error("%s [%s; `cimc -v ...` shows where]", err, type(err).__name__)
        sys.exit(1)


if __name__ == "__main__":
    main()
