from kapok.tools.cli import app

app(prog_name="kapok")
