"""`kapok agent ...`: run the gateway agent, or ask it how it is doing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from .config import DEFAULT_LISTEN, DEFAULT_METRICS, Address, MqttTarget, Settings

app = typer.Typer(
    name="agent",
    help="The gateway agent: CoAP uplinks in, durable queue, cloud forwarding, local safety.",
    no_args_is_help=True,
    add_completion=False,
)


def _address(value: str) -> Address:
    try:
        return Address.parse(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@app.command()
def run(
    cloud: str = typer.Option(..., "--cloud", help="Base URL of the Kapok cloud."),
    token: str = typer.Option(
        ..., "--token", envvar="KAPOK_GATEWAY_TOKEN", help="The gateway's bearer token."
    ),
    listen: str = typer.Option(DEFAULT_LISTEN, "--listen", help="CoAP address, HOST:PORT."),
    data: Path = typer.Option(..., "--data", help="Data directory (created if missing)."),
    metrics: str = typer.Option(
        DEFAULT_METRICS, "--metrics", help="Prometheus /metrics address, HOST:PORT; 'off' for none."
    ),
    max_queue_bytes: int = typer.Option(
        512 * 2**20, "--max-queue-bytes", min=4096, help="Disk quota of the queue, in bytes."
    ),
    min_free_bytes: int = typer.Option(
        32 * 2**20, "--min-free-bytes", min=0, help="Refuse uplinks when the disk has less free."
    ),
    max_payload: int = typer.Option(1024, "--max-payload", min=64, help="Uplink size limit."),
    forward_batch: int = typer.Option(256, "--forward-batch", min=1, help="Readings per batch."),
    registry_interval: float = typer.Option(
        60.0, "--registry-interval", min=1.0, help="Seconds between registry refreshes."
    ),
    command_wait: int = typer.Option(
        25, "--command-wait", min=1, max=30, help="Long-poll seconds for commands."
    ),
    backoff_cap: float = typer.Option(
        60.0, "--backoff-cap", min=0.1, help="Longest pause between retries to the cloud."
    ),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        envvar="KAPOK_MQTT",
        help="Publish readings to this MQTT broker, mqtt://[user:pass@]host[:port] "
        "(mqtts:// for TLS), with Home Assistant discovery. Off by default.",
    ),
    mqtt_discovery_prefix: str = typer.Option(
        "homeassistant", "--mqtt-discovery-prefix", help="Home Assistant's discovery prefix."
    ),
    mqtt_offline_after: float = typer.Option(
        3 * 3600,
        "--mqtt-offline-after",
        min=1.0,
        help="Seconds without an uplink before a node shows offline in Home Assistant.",
    ),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the agent until SIGTERM or SIGINT (then it finishes what it holds and exits 0)."""
    from .agent import run_until_signalled
    from .logs import configure

    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("one of debug, info, warning, error", param_hint="--log-level")
    try:
        mqtt_target = MqttTarget.parse(mqtt) if mqtt else None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--mqtt") from None
    settings = Settings(
        cloud=cloud,
        token=token,
        data_dir=data,
        listen=_address(listen),
        metrics=None if metrics == "off" else _address(metrics),
        max_queue_bytes=max_queue_bytes,
        min_free_bytes=min_free_bytes,
        max_payload=max_payload,
        forward_batch=forward_batch,
        registry_interval=registry_interval,
        command_wait=command_wait,
        backoff_cap=backoff_cap,
        mqtt=mqtt_target,
        mqtt_discovery_prefix=mqtt_discovery_prefix,
        mqtt_offline_after=mqtt_offline_after,
    )
    configure(log_level)
    try:
        asyncio.run(run_until_signalled(settings))
    except OSError as e:  # the port is taken, the data directory is not writable, ...
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def status(
    data: Path = typer.Option(..., "--data", help="The agent's data directory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Queue depth, oldest unsent reading, last cloud contact, rejects by reason."""
    from rich.console import Console

    from .status import StatusError, read_status, render

    try:
        report = read_status(data)
    except StatusError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        render(report, Console())
