"""Settings: the only reader of the environment (and of a `.env` file)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SETUP_GUIDE = """\
Docket needs a Slack app before it can serve.

  1. Go to https://api.slack.com/apps -> Create New App -> From a manifest,
     pick your workspace and paste the contents of manifest.yml from this repository.
     Replace https://docket.example.com with the public URL of this server.
  2. Install the app to the workspace.
  3. Put these values in the environment or in a .env file next to where you run Docket:
       SLACK_BOT_TOKEN       OAuth & Permissions -> Bot User OAuth Token (xoxb-...)
       SLACK_SIGNING_SECRET  Basic Information -> App Credentials -> Signing Secret
     Optional: SLACK_APP_TOKEN (xapp-..., Basic Information -> App-Level Tokens, scope
     connections:write) to use Socket Mode instead of a public URL.
  4. Run `make run` again.

To look at Docket without Slack first, run `docket demo`.
"""


MIN_SECRET_CHARS = 16
_WEAK_SECRETS = {"changeme", "secret", "password", "docket", "example", "test", "default"}


def weak_secret(value: str) -> bool:
    """Empty, short, a well-known word, or too few different characters to be random."""
    text = value.strip()
    if len(text) < MIN_SECRET_CHARS or len(set(text)) < 6:
        return True
    lower = text.lower()
    # "changemechangeme": a known word repeated to the length asked for.
    return any(
        (word * (len(lower) // len(word) + 1))[: len(lower)] == lower for word in _WEAK_SECRETS
    )


class ConfigError(Exception):
    """Settings that stop start-up; the message says what to set and where to find it."""


class Settings(BaseSettings):
    """Every setting Docket reads. Names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite+aiosqlite:///docket.db"
    port: int = Field(default=3000, ge=0, le=65535)
    host: str = "0.0.0.0"
    docket_timezone: str = "UTC"
    docket_currency: str = "EUR"
    docket_support_address: str = "support@example.com"
    docket_smtp_port: int = Field(default=2525, ge=0, le=65535)
    docket_smtp_host: str = "127.0.0.1"
    docket_smtp_relay: str | None = None
    docket_smtp_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    # SMTP sessions at once; each spools its message to a temporary file (256 KB in memory) and
    # stores it in pieces, so the process grows by at most sessions x (max bytes + 8 MB).
    docket_smtp_max_sessions: int = Field(default=4, ge=1, le=1000)
    docket_smtp_tls_cert: str | None = None
    docket_smtp_tls_key: str | None = None
    docket_triage_channel: str | None = None
    docket_managers_channel: str | None = None
    docket_admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docket_secret: SecretStr | None = None
    docket_outbox_retry_hours: float = Field(default=24.0, gt=0)
    docket_fold_updates: int = Field(default=3, ge=1)
    docket_fold_minutes: int = Field(default=10, ge=1)
    docket_reopen_days: int = Field(default=14, ge=0)
    docket_hold_unknown_senders: bool = False
    # The authserv-id of the receiving mail server whose Authentication-Results header Docket
    # believes (DMARC / aligned DKIM pass); unset: no sender is authenticated by headers.
    docket_mail_trusted_authserv_id: str | None = None
    docket_scheduler: bool = True
    # False makes this replica accept and store events without processing them.
    docket_process_events: bool = True
    docket_log_level: str = "INFO"
    # Stored commands, actions and submissions: how many run at once per process, and how
    # long a replica's claim lasts before another replica may take the row over.
    docket_intake_concurrency: int = Field(default=8, ge=1, le=1000)
    docket_intake_lease_seconds: int = Field(default=30, ge=1)
    # Log SQL statement parameters (customer text, addresses, raw mail) at DEBUG: off unless
    # asked for, even when DOCKET_LOG_LEVEL is DEBUG.
    docket_log_sql_parameters: bool = False

    @field_validator("docket_admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("slack_bot_token", "slack_signing_secret", "slack_app_token")
    @classmethod
    def _not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty (remove it, or paste the value from Slack)")
        return value

    @field_validator("docket_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and weak_secret(value.get_secret_value()):
            raise ValueError(
                f"too weak: use at least {MIN_SECRET_CHARS} random characters "
                "(for example the output of `openssl rand -hex 32`)"
            )
        return value

    @field_validator("docket_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from exc
        return value

    @field_validator("docket_currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"currency must be a 3-letter ISO code, got {value!r}")
        return value.upper()

    @field_validator("slack_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("SLACK_API_URL must start with http:// or https://")
        return value if value.endswith("/") else value + "/"

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def mail_secret(self) -> bytes:
        """Key for the hashes in our Message-IDs and reply addresses."""
        if self.docket_secret is not None:
            return self.docket_secret.get_secret_value().encode()
        base = self.slack_signing_secret.get_secret_value() if self.slack_signing_secret else ""
        return hmac.new(base.encode(), b"docket-mail", hashlib.sha256).digest()

    def require_slack(self) -> None:
        """Refuse to serve without the credentials Slack needs; the message is the guide."""
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_signing_secret is None and not self.socket_mode:
            missing.append("SLACK_SIGNING_SECRET")
        if missing:
            raise ConfigError(f"Missing {', '.join(missing)}.\n\n{SETUP_GUIDE}")


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError(
            "Docket cannot start: invalid settings\n" + "\n".join(lines) + "\n\n"
            "Fix them in the environment or in .env (see the settings table in README.md)."
        ) from None
