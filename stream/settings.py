"""Worker configuration: one validated, frozen ``Settings`` with nested sections.

Every field is read from a flat environment variable, ``MODSTREAM_`` plus the
field name in upper case (``kafka.bootstrap_servers`` is
``MODSTREAM_BOOTSTRAP_SERVERS``), so operators type the names the design
documents. A YAML file (``--config``) uses the nested layout; the environment
wins over the file. Validation happens once, at start, and a failure raises
:class:`~stream.errors.ConfigError` naming the field, its variable and the bad
value. Code deeper in is handed ``Settings``; it never reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stream.errors import ConfigError

ENV_PREFIX = "MODSTREAM_"
DEFAULT_MODEL_DIR = (
    Path(__file__).resolve().parent.parent / "classifiers" / "models" / "modstream-minilm"
)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def env_name(field: str) -> str:
    """The environment variable of a field: ``max_batch_size`` -> ``MODSTREAM_MAX_BATCH_SIZE``."""
    return ENV_PREFIX + field.upper()


def _readable_file(path: Path | None) -> Path | None:
    # Secrets and certificates are read after start-up; check them now so a
    # typo fails validation instead of crashing the worker when it connects.
    if path is not None and not path.is_file():
        raise ValueError("no such file")
    return path


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    input_topic: str = Field(
        "chat.messages", min_length=1, description="Topic the worker consumes."
    )
    scores_topic: str = Field(
        "moderation.scores", min_length=1, description="One result per input message."
    )
    flagged_topic: str = Field(
        "moderation.flagged", min_length=1, description="Flagged results with the action."
    )
    dlq_topic: str = Field(
        "moderation.dlq", min_length=1, description="Dead letters with a reason."
    )
    group_id: str = Field("modstream", min_length=1, description="Consumer group of the workers.")
    client_id: str = Field("modstream", description="Client id sent to the brokers.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (prefer the _FILE form)."
    )
    sasl_password_file: Path | None = Field(None, description="File holding the SASL password.")
    ssl_cafile: Path | None = Field(
        None, description="CA bundle that signs the brokers' certificates."
    )
    ssl_certfile: Path | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key for mutual TLS.")
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="Group session timeout: how fast a dead worker's partitions move.",
    )
    create_topics: bool = Field(True, description="Create missing output topics at start.")
    fetch_max_records: int = Field(2000, ge=1, description="Records taken from one fetch.")

    _files_exist = field_validator(
        "sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile"
    )(_readable_file)

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            protocol = f"security_protocol is {self.security_protocol}"
            if self.sasl_mechanism is None:
                raise ValueError(
                    f"sasl_mechanism ({env_name('sasl_mechanism')}) is required when {protocol}"
                )
            if not self.sasl_username:
                raise ValueError(
                    f"sasl_username ({env_name('sasl_username')}) is required when {protocol}"
                )
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ValueError(
                    f"sasl_password ({env_name('sasl_password')}) or sasl_password_file "
                    f"({env_name('sasl_password_file')}) is required when {protocol}"
                )
        return self

    def password(self) -> str | None:
        """The SASL password, read from the file when one is configured."""
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text().strip()
        return self.sasl_password.get_secret_value() if self.sasl_password else None


class BatchingSettings(_Section):
    max_batch_size: int = Field(
        256, ge=1, le=4096, description="A batch closes at this many messages."
    )
    max_batch_wait_ms: float = Field(
        20.0, ge=0, le=60_000, description="... or this long after its first."
    )
    max_inflight_batches: int = Field(
        4, ge=1, le=64, description="Batches between fetch and commit (backpressure)."
    )
    commit_interval_ms: float = Field(200.0, ge=0, description="Longest wait between commits.")
    drain_timeout_s: float = Field(
        25.0, gt=0, description="SIGTERM: time allowed to finish in-flight work."
    )


class ModelSettings(_Section):
    classifier: Literal["onnx", "null"] = Field(
        "onnx",
        description="null: all-zero scores, to measure the plumbing alone (modstream bench).",
    )
    model_dir: Path = Field(
        DEFAULT_MODEL_DIR, description="Directory with model_card.json and ONNX files."
    )
    model_variant: Literal["auto", "int8", "fp16", "fp32"] = Field(
        "auto", description="auto: fp16 on CUDA/TensorRT, int8 on CPU."
    )
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="ONNX Runtime execution providers in order of preference, comma separated.",
    )
    intra_op_threads: int = Field(0, ge=0, description="0: fit the container's CPU quota.")
    inference_streams: int = Field(
        0,
        ge=0,
        description="ONNX runs at once, sharing the threads; 0: one per thread on CPU, 1 on GPU.",
    )
    cache_size: int = Field(
        65_536, ge=0, description="Exact-text dedupe cache entries; 0 turns it off."
    )
    trt_cache_dir: Path = Field(
        Path("/tmp/modstream-trt"), description="TensorRT engine cache directory."
    )


class LimitSettings(_Section):
    max_message_bytes: int = Field(
        1_048_576, ge=64, description="Larger input values go to the DLQ."
    )
    max_text_chars: int = Field(100_000, ge=1, description="Longer texts go to the DLQ.")


class HttpSettings(_Section):
    http_host: str = Field("0.0.0.0", description="Address the HTTP server binds.")
    http_port: int = Field(
        8080, ge=0, le=65535, description="Port for /metrics, /healthz, /readyz, /v1."
    )
    http_max_request_bytes: int = Field(1_048_576, ge=1024, description="POST body limit.")
    http_max_inputs: int = Field(256, ge=1, description="Texts per /v1/moderations request.")
    http_auth_token: SecretStr | None = Field(None, description="Bearer token required on /v1.")
    http_auth_token_file: Path | None = Field(None, description="File holding the bearer token.")

    _files_exist = field_validator("http_auth_token_file")(_readable_file)

    def auth_token(self) -> str | None:
        """The bearer token, read from the file when one is configured."""
        if self.http_auth_token_file is not None:
            return self.http_auth_token_file.read_text().strip()
        return self.http_auth_token.get_secret_value() if self.http_auth_token else None


class PolicySettings(_Section):
    policy_file: Path | None = Field(
        None, description="YAML policy: thresholds and actions per category."
    )
    include_text_in_flagged: bool = Field(
        True, description="Copy the text into flag events for reviewers."
    )


class LogSettings(_Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_text: bool = Field(False, description="Allow message text in logs (debugging only).")


_SECTIONS: dict[str, type[_Section]] = {
    "kafka": KafkaSettings,
    "batching": BatchingSettings,
    "model": ModelSettings,
    "limits": LimitSettings,
    "http": HttpSettings,
    "policy": PolicySettings,
    "logging": LogSettings,
}


class _FlatEnvSource(PydanticBaseSettingsSource):
    """Reads ``MODSTREAM_<FIELD>`` for every field of every section."""

    def __init__(self, settings_cls: type[BaseSettings], environ: dict[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for section, model in _SECTIONS.items():
            for name in model.model_fields:
                raw = self._environ.get(env_name(name))
                if raw is None:
                    continue
                value: Any = raw
                if name == "providers":
                    value = tuple(p.strip() for p in raw.split(",") if p.strip())
                out.setdefault(section, {})[name] = value
        return out


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


class Settings(BaseSettings):
    """Everything a worker needs, validated at start. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    kafka: KafkaSettings = KafkaSettings()
    batching: BatchingSettings = BatchingSettings()
    model: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    http: HttpSettings = HttpSettings()
    policy: PolicySettings = PolicySettings()
    logging: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the explicit sources below; load_settings() feeds env and YAML.
        return (init_settings,)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, recursively, without mutating either."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _describe(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    field = ".".join(loc)
    var = f" ({env_name(loc[1])})" if len(loc) >= 2 and loc[0] in _SECTIONS else ""
    got = error.get("input")
    secret = any(("password" in p or "token" in p) and not p.endswith("_file") for p in loc)
    shown = "***" if secret else repr(got)
    if isinstance(got, dict):
        shown = "the section"
    return f"{field}{var}: {error['msg']}, got {shown}"


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: dict[str, Any],
) -> Settings:
    """Validate settings from defaults < YAML file < environment < ``overrides``.

    Raises:
        ConfigError: one line per invalid field, naming it and its variable.
    """
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = _read_yaml(config_file) if config_file else {}
    data = deep_merge(data, _FlatEnvSource(Settings, env)())
    data = deep_merge(data, dict(overrides))
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; expected {sorted(_SECTIONS)}")
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = "; ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"invalid configuration: {lines}") from exc


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(variable, YAML path, default, description) of every field, for the README table."""
    rows = []
    for section, model in _SECTIONS.items():
        for name, info in model.model_fields.items():
            default = info.default
            if isinstance(default, tuple):
                default = ",".join(default)
            if isinstance(default, Path) and default == DEFAULT_MODEL_DIR:
                default = "bundled modstream-minilm"
            rows.append((env_name(name), f"{section}.{name}", str(default), info.description or ""))
    return rows
