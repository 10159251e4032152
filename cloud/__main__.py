"""`python -m kapok.cloud` = `kapok cloud`."""

from kapok.cloud.cli import app

app(prog_name="kapok cloud")
