"""`kapok`: one command for installers, operators and developers."""

import typer

from kapok import __version__
from kapok.cloud.cli import app as cloud_app
from kapok.edge_agent.cli import app as agent_app
from kapok.tools import device, firmware
from kapok.tools.demo import demo
from kapok.tools.sim import sim
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


app.command(name="demo")(demo)
app.add_typer(cloud_app, name="cloud")
app.add_typer(agent_app, name="agent")
app.add_typer(device.app)
app.add_typer(firmware.app)
app.command(name="sim")(sim)
app.command(name="verify")(verify)
