"""One way for every `kapok` command to fail: one clear line, a trusted exit code."""

import typer

# Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILED = 1  # the thing checked is bad: a signature fails, a row does not verify
EXIT_USAGE = 2  # wrong arguments (typer/click's own code for usage errors)
EXIT_UNAVAILABLE = 3  # a peer (cloud, board, gateway) cannot be reached


class KapokError(Exception):
    """An error to report as one line without a traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_FAILED):
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
