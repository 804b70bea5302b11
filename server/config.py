"""Server configuration: defaults < TOML file < CHIBI_* environment variables < CLI flags.

Every field of `ServerConfig` can be set in each of the three places under the
same name: `max_queue = 8` in the TOML file (top level or a `[server]` table),
`CHIBI_MAX_QUEUE=8` in the environment, `--max-queue 8` on the command line.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .process_setup import usable_cores


class ConfigError(ValueError):
    """The configuration is invalid or unsafe (e.g. a public address without a token)."""


@dataclass
class ServerConfig:
    """Everything `chibi serve` can be told. Sizes in bytes, times in seconds."""

    host: str = "127.0.0.1"
    port: int = 8765
    tokens: list[str] = field(default_factory=list)  # bearer tokens; any one opens a session
    token_file: str = ""  # file with one token per line (keeps tokens out of `ps`)
    workers: int = 0  # worker processes; 0 = one per CPU core
    model: str = "default"  # regressor weights name (as `chibi convert --model`)
    weights_dir: str = ""  # folder of the weights; "" = the shipped avatar3d/weights
    max_frame_bytes: int = 16 * 1024 * 1024  # any websocket message; larger closes with 1009
    max_json_bytes: int = 64 * 1024  # a text (control) message
    max_photo_bytes: int = 20 * 1024 * 1024  # one uploaded photo, all chunks together
    max_pixels: int = 40_000_000  # decoded photo width * height
    max_in_flight: int = 4  # requests in flight per connection
    max_queue: int = 16  # requests waiting for a worker, all connections together
    max_connections: int = 256
    rate: float = 5.0  # requests per second per token (or per client address without auth)
    rate_burst: int = 20
    request_timeout: float = 120.0  # from `accepted` to `done`
    idle_timeout: float = 300.0  # no message and nothing in flight
    hello_timeout: float = 10.0  # from connect to `hello`
    send_timeout: float = 60.0  # a client that reads nothing for this long is dropped
    keepalive: float = 20.0  # websocket ping every N s; no pong within N s drops the client
    shutdown_timeout: float = 30.0  # how long SIGTERM waits for requests in flight
    chunk_bytes: int = 1024 * 1024  # payload bytes per result chunk
    compression: str = "off"  # "off" | "text": deflate JSON text frames, never binary ones
    allowed_origins: list[str] = field(default_factory=list)  # "*" allows every origin
    tls_cert: str = ""
    tls_key: str = ""
    log_level: str = "info"

    def validate(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and not value >= 0:  # NaN too (TOML has nan)
                raise ConfigError(f"{f.name} must be >= 0, got {value}")
        for name in (
            "request_timeout",
            "idle_timeout",
            "hello_timeout",
            "send_timeout",
            "keepalive",
        ):
            if getattr(self, name) == 0:  # would expire everything at once, not never
                raise ConfigError(f"{name} must be > 0 seconds")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.max_in_flight < 1 or self.chunk_bytes < 1024 or self.max_json_bytes < 1024:
            raise ConfigError("max_in_flight >= 1, chunk_bytes >= 1024, max_json_bytes >= 1024")
        if self.chunk_bytes + 8 + 4096 > self.max_frame_bytes:
            raise ConfigError("chunk_bytes (plus header) must fit in max_frame_bytes")
        if self.compression not in ("off", "text"):
            raise ConfigError(f"compression must be 'off' or 'text', got {self.compression!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both tls_cert and tls_key")
        if any(not token or len(token) < 8 for token in self.tokens):
            raise ConfigError("tokens must be at least 8 characters long")
        if not self.tokens and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on non-loopback address {self.host!r} without a token: "
                "set --token, CHIBI_TOKENS or token_file"
            )

    def worker_count(self) -> int:
        return self.workers or usable_cores()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; any other name or address is public."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _convert(name: str, kind: str, value: Any) -> Any:
    """A TOML/env/CLI value -> the field's type (env and CLI values are strings)."""
    try:
        if kind == "list[str]":
            if isinstance(value, str):
                return [part.strip() for part in value.split(",") if part.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            raise TypeError
        if kind == "int" and not isinstance(value, bool):
            return int(value)
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "str" and isinstance(value, str):
            return value
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{name}: cannot use {value!r} as {kind}")


def load_config(
    toml_path: str | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> ServerConfig:
    """Merge the TOML file, the environment and explicit overrides (CLI flags, not None)."""
    env = os.environ if env is None else env
    kinds = {f.name: str(f.type) for f in fields(ServerConfig)}
    values: dict[str, Any] = {}
    toml_path = toml_path or env.get("CHIBI_CONFIG")
    if toml_path:
        try:
            data = tomllib.loads(Path(toml_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {toml_path}: {exc}") from None
        data = data.get("server", data)
        for name, value in data.items():
            if name not in kinds:
                raise ConfigError(f"{toml_path}: unknown setting {name!r}")
            values[name] = _convert(name, kinds[name], value)
    for name, kind in kinds.items():
        key = f"CHIBI_{name.upper()}"
        if key in env:
            values[name] = _convert(key, kind, env[key])
    if "CHIBI_TOKEN" in env:  # the singular spelling people will reach for
        values["tokens"] = _convert("CHIBI_TOKEN", "list[str]", env["CHIBI_TOKEN"])
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _convert(name, kinds[name], value)
    config = ServerConfig(**values)
    if config.token_file:
        try:
            lines = Path(config.token_file).read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read token_file: {exc}") from None
        config.tokens = config.tokens + [line.strip() for line in lines if line.strip()]
    config.validate()
    return config
