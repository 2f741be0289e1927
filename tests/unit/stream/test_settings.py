"""Settings: flat MODSTREAM_* names, YAML < env precedence, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.errors import ConfigError
from stream.settings import (
    _SECTIONS,
    DEFAULT_MODEL_DIR,
    Settings,
    describe_fields,
    env_name,
    load_settings,
)

SECRET = "hunter2-do-not-print"


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modstream.yaml"
    path.write_text(text)
    return path


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_defaults_without_environment() -> None:
    s = load_settings(environ={})
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.input_topic == "chat.messages"
    assert s.kafka.scores_topic == "moderation.scores"
    assert s.kafka.flagged_topic == "moderation.flagged"
    assert s.kafka.dlq_topic == "moderation.dlq"
    assert s.kafka.group_id == "modstream"
    assert s.http.http_port == 8080
    assert s.model.model_dir == DEFAULT_MODEL_DIR
    assert s.model.providers == ("CPUExecutionProvider",)


def test_env_name_is_prefix_plus_upper_field() -> None:
    assert env_name("max_batch_size") == "MODSTREAM_MAX_BATCH_SIZE"
    assert env_name("bootstrap_servers") == "MODSTREAM_BOOTSTRAP_SERVERS"


@pytest.mark.parametrize(
    ("variable", "value", "path", "expected"),
    [
        ("MODSTREAM_BOOTSTRAP_SERVERS", "k1:9092,k2:9092", "kafka.bootstrap_servers", None),
        ("MODSTREAM_INPUT_TOPIC", "in", "kafka.input_topic", None),
        ("MODSTREAM_SCORES_TOPIC", "s", "kafka.scores_topic", None),
        ("MODSTREAM_FLAGGED_TOPIC", "f", "kafka.flagged_topic", None),
        ("MODSTREAM_DLQ_TOPIC", "d", "kafka.dlq_topic", None),
        ("MODSTREAM_GROUP_ID", "g", "kafka.group_id", None),
        ("MODSTREAM_HTTP_PORT", "9000", "http.http_port", 9000),
        ("MODSTREAM_MODEL_DIR", "/models/x", "model.model_dir", Path("/models/x")),
        ("MODSTREAM_MAX_BATCH_SIZE", "128", "batching.max_batch_size", 128),
        ("MODSTREAM_MAX_BATCH_WAIT_MS", "5.5", "batching.max_batch_wait_ms", 5.5),
        ("MODSTREAM_CREATE_TOPICS", "false", "kafka.create_topics", False),
        ("MODSTREAM_LOG_LEVEL", "DEBUG", "logging.log_level", None),
    ],
)
def test_design_variables_set_their_fields(
    variable: str, value: str, path: str, expected: object
) -> None:
    s = load_settings(environ={variable: value})
    section, field = path.split(".")
    assert getattr(getattr(s, section), field) == (value if expected is None else expected)


def test_field_names_are_unique_across_sections() -> None:
    # One flat variable per field: two sections sharing a name would share a variable.
    names = [name for model in _SECTIONS.values() for name in model.model_fields]
    assert len(names) == len(set(names))


def test_environment_wins_over_yaml_file(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        "batching:\n  max_batch_size: 32\n  max_batch_wait_ms: 7\nkafka:\n  group_id: from-file\n",
    )
    s = load_settings(path, environ={"MODSTREAM_MAX_BATCH_SIZE": "16"})
    assert s.batching.max_batch_size == 16  # env wins
    assert s.batching.max_batch_wait_ms == 7  # file value kept where env is silent
    assert s.kafka.group_id == "from-file"
    assert s.kafka.input_topic == "chat.messages"  # default where both are silent


def test_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODSTREAM_GROUP_ID", "from-os-environ")
    assert load_settings().kafka.group_id == "from-os-environ"


def test_providers_are_a_comma_separated_list() -> None:
    s = load_settings(
        environ={"MODSTREAM_PROVIDERS": " CUDAExecutionProvider, ,CPUExecutionProvider ,"}
    )
    assert s.model.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_providers_from_yaml_list(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "model:\n  providers: [TensorrtExecutionProvider, X]\n")
    assert load_settings(path, environ={}).model.providers == ("TensorrtExecutionProvider", "X")


def test_settings_are_frozen() -> None:
    s = load_settings(environ={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        s.batching.max_batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("MODSTREAM_MAX_BATCH_SIZE", "-1", "batching.max_batch_size"),
        ("MODSTREAM_MAX_BATCH_SIZE", "lots", "batching.max_batch_size"),
        ("MODSTREAM_HTTP_PORT", "70000", "http.http_port"),
        ("MODSTREAM_SECURITY_PROTOCOL", "TLS", "kafka.security_protocol"),
        ("MODSTREAM_CREATE_TOPICS", "maybe", "kafka.create_topics"),
        ("MODSTREAM_MODEL_VARIANT", "int4", "model.model_variant"),
    ],
)
def test_error_names_field_variable_and_value(variable: str, value: str, field: str) -> None:
    message = config_error(environ={variable: value})
    assert field in message
    assert variable in message
    assert repr(value) in message


def test_every_invalid_field_is_reported_at_once() -> None:
    message = config_error(environ={"MODSTREAM_MAX_BATCH_SIZE": "0", "MODSTREAM_HTTP_PORT": "-5"})
    assert "MODSTREAM_MAX_BATCH_SIZE" in message
    assert "MODSTREAM_HTTP_PORT" in message


def test_sasl_needs_a_mechanism() -> None:
    message = config_error(
        environ={
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "MODSTREAM_SASL_USERNAME": "u",
            "MODSTREAM_SASL_PASSWORD": SECRET,
        }
    )
    assert "MODSTREAM_SASL_MECHANISM" in message
    assert SECRET not in message


def test_sasl_needs_a_username() -> None:
    message = config_error(
        environ={
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MODSTREAM_SASL_MECHANISM": "PLAIN",
            "MODSTREAM_SASL_PASSWORD": SECRET,
        }
    )
    assert "MODSTREAM_SASL_USERNAME" in message
    assert SECRET not in message


def test_sasl_needs_a_password() -> None:
    message = config_error(
        environ={
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "MODSTREAM_SASL_MECHANISM": "SCRAM-SHA-512",
            "MODSTREAM_SASL_USERNAME": "u",
        }
    )
    assert "MODSTREAM_SASL_PASSWORD" in message


def test_complete_sasl_settings_validate() -> None:
    s = load_settings(
        environ={
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
            "MODSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
            "MODSTREAM_SASL_USERNAME": "svc",
            "MODSTREAM_SASL_PASSWORD": SECRET,
        }
    )
    assert s.kafka.password() == SECRET
    assert SECRET not in repr(s)
    assert SECRET not in str(s.kafka)


def test_invalid_password_value_is_never_printed(tmp_path: Path) -> None:
    # A wrong type reaches the error message path with the secret as its input.
    path = write_yaml(
        tmp_path,
        "kafka:\n  sasl_password: [hunter2-do-not-print]\n"
        "http:\n  http_auth_token: [x1y2z3-token]\n",
    )
    message = config_error(config_file=path, environ={})
    assert "kafka.sasl_password" in message
    assert "http.http_auth_token" in message
    assert SECRET not in message
    assert "x1y2z3-token" not in message


def test_password_and_token_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    (tmp_path / "tok").write_text("  bearer-123 \n")
    s = load_settings(
        environ={
            "MODSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "MODSTREAM_SASL_MECHANISM": "PLAIN",
            "MODSTREAM_SASL_USERNAME": "svc",
            "MODSTREAM_SASL_PASSWORD_FILE": str(tmp_path / "pw"),
            "MODSTREAM_HTTP_AUTH_TOKEN_FILE": str(tmp_path / "tok"),
        }
    )
    assert s.kafka.password() == SECRET
    assert s.http.auth_token() == "bearer-123"


def test_file_wins_over_inline_secret(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file")
    s = load_settings(
        environ={
            "MODSTREAM_HTTP_AUTH_TOKEN": "inline",
            "MODSTREAM_HTTP_AUTH_TOKEN_FILE": str(tmp_path / "tok"),
        }
    )
    assert s.http.auth_token() == "from-file"
    assert load_settings(environ={}).http.auth_token() is None


@pytest.mark.parametrize(
    "variable",
    ["MODSTREAM_SASL_PASSWORD_FILE", "MODSTREAM_HTTP_AUTH_TOKEN_FILE", "MODSTREAM_SSL_CAFILE"],
)
def test_missing_secret_file_fails_validation(variable: str) -> None:
    # Otherwise the worker would start and crash when it first connects.
    message = config_error(environ={variable: "/nonexistent/secret"})
    assert variable in message
    assert "/nonexistent/secret" in message


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "kafak:\n  group_id: x\n")
    message = config_error(config_file=path, environ={})
    assert "kafak" in message
    assert "kafka" in message  # the expected names are listed


def test_unknown_field_in_a_section_is_rejected(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "batching:\n  max_batch: 8\n")
    assert "batching.max_batch" in config_error(config_file=path, environ={})


def test_unreadable_or_malformed_file(tmp_path: Path) -> None:
    assert "cannot read config file" in config_error(
        config_file=tmp_path / "absent.yaml", environ={}
    )
    bad = write_yaml(tmp_path, "kafka: [unclosed\n")
    assert "not valid YAML" in config_error(config_file=bad, environ={})
    scalar = write_yaml(tmp_path, "just a string\n")
    assert "mapping" in config_error(config_file=scalar, environ={})


def test_empty_yaml_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write_yaml(tmp_path, ""), environ={}) == Settings()


def test_describe_fields_covers_every_field() -> None:
    rows = describe_fields()
    paths = {path for _, path, _, _ in rows}
    expected = {f"{s}.{name}" for s, model in _SECTIONS.items() for name in model.model_fields}
    assert paths == expected
    assert len(rows) == len(expected)
    for variable, path, _default, description in rows:
        assert variable == env_name(path.split(".")[1])
        assert description, f"{path} has no description"


def test_describe_fields_shows_readable_defaults() -> None:
    rows = {path: default for _, path, default, _ in describe_fields()}
    assert rows["model.providers"] == "CPUExecutionProvider"
    assert rows["model.model_dir"] == "bundled modstream-minilm"
    assert rows["batching.max_batch_size"] == "256"
