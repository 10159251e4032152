"""Settings of the cloud service, read from the environment (`KAPOK_*`).

A plain pydantic model filled from `os.environ`: one place that names every
knob, with its default and its check. `Settings.from_env()` is what the
command line uses; tests build `Settings(...)` directly.
"""

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

ENV_PREFIX = "KAPOK_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kapok"


class Settings(BaseModel):
    """Every setting, its environment variable being `KAPOK_<NAME>` upper-cased."""

    data_dir: Path = Field(default_factory=default_data_dir)
    # SQLAlchemy URL or plain `postgresql://...`; empty = `kapok.db` in data_dir
    db: str = ""
    # "pgbouncer": `db` goes through a pooler in transaction mode, so no
    # server-side prepared statements, and the LISTEN for command wake-ups
    # (which needs a session of its own) goes to `listen_db`, straight to
    # the PostgreSQL server
    db_pooler: Literal["", "pgbouncer"] = ""
    listen_db: str = ""
    # password of the user `admin`, needed only when the database has no user yet
    admin_password: str | None = None

    # serve the dashboard (kapok.cloud.web) beside the API when it is installed;
    # off for API-only workers (ingest behind a load balancer)
    dashboard: bool = True

    # logins
    access_token_minutes: float = Field(default=12 * 60, gt=0)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    # scrypt cost (N, a power of two); recorded with each hash, so raising it
    # later keeps old hashes valid
    scrypt_n: int = Field(default=2**15, ge=2)

    # alarms and health checks (escalation steps are per community: rules)
    silent_factor: float = Field(default=3, gt=0)
    check_seconds: float = Field(default=60, gt=0)
    background_checks: bool = True

    # commands
    command_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    command_max_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    long_poll_max_seconds: float = Field(default=30, ge=0)
    # a waiting long poll looks at the database again this often on its own;
    # queued commands wake it at once (every worker on PostgreSQL: notify.py)
    long_poll_recheck_seconds: float = Field(default=10, gt=0)

    # firmware
    max_bundle_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    rollout_failure_ratio: float = Field(default=0.2, gt=0, le=1)

    # work orders: the largest photo a note may carry
    max_photo_bytes: int = Field(default=5 * 1024 * 1024, ge=1)

    # ingest
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1)

    # billing: a reading this close to a month boundary is taken as the
    # register at the boundary (ACTUAL); farther ones are interpolated
    billing_actual_window_seconds: int = Field(default=3600, ge=0)
    timezone: str = "Asia/Shanghai"

    # notifications (cloud/notifications/): where links in messages point
    public_url: str = "http://localhost:8000"
    notify_worker: bool = True
    # the sender looks for due notifications this often (new ones of this
    # process wake it at once)
    notify_poll_seconds: float = Field(default=1.0, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1)
    # first retry after this long, doubling up to notify_backoff_max_seconds
    notify_backoff_seconds: float = Field(default=30, gt=0)
    notify_backoff_max_seconds: float = Field(default=3600, gt=0)
    notify_timeout_seconds: float = Field(default=10, gt=0)
    # e-mail channels: the SMTP server the cloud sends through
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_ca_file: str = ""  # a private CA for STARTTLS; empty: the system's
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "kapok@localhost"
    # SMS channels: one provider per installation (cloud/notifications/sms.py)
    sms_provider: Literal["", "aliyun", "tencent"] = ""
    sms_endpoint: str = ""  # empty: the provider's public endpoint
    sms_key_id: str = ""
    sms_key_secret: str = ""
    sms_sign_name: str = ""
    sms_template: str = ""
    sms_app_id: str = ""  # Tencent Cloud: SmsSdkAppId
    sms_region: str = "ap-guangzhou"

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, n: int) -> int:
        if n & (n - 1):
            raise ValueError("scrypt_n must be a power of two")
        return n

    @model_validator(mode="after")
    def _pooler_needs_a_direct_listen(self) -> "Settings":
        if self.db_pooler and not self.listen_db:
            raise ValueError(
                "KAPOK_DB_POOLER is set: KAPOK_LISTEN_DB must name the PostgreSQL server "
                "itself (LISTEN does not work through a pooler in transaction mode)"
            )
        return self

    @property
    def listen_url(self) -> str:
        """Where worker processes LISTEN for each other's commands."""
        return self.listen_db or self.database_url

    @property
    def database_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'kapok.db'}"

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Settings from `KAPOK_<NAME>` variables; `overrides` (e.g. command-line
        flags) win over the environment. Empty variables count as unset."""
        environ = os.environ if environ is None else environ
        values = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw not in (None, ""):
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
