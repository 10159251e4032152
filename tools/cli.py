"""`kapok`: one command for installers, operators and developers."""

import typer

from kapok import __version__
from kapok.tools import device
from kapok.tools.verify import verify

app = typer.Typer(
    name="kapok",
    help="Kapok (木棉): smart-community edge toolkit — firmware, gateway agent and cloud.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kapok {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Kapok (木棉): smart-community edge toolkit."""


app.add_typer(device.app)
app.command(name="verify")(verify)
