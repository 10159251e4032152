"""`python -m kapok.edge_agent` runs the same commands as `kapok agent`."""

from .cli import app

app(prog_name="kapok agent")
