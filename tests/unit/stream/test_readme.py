"""The README stays true: its configuration table lists every setting with its default."""

from pathlib import Path

from stream.settings import describe_fields

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_config_table_lists_every_setting_with_its_default() -> None:
    text = README.read_text()
    for env, path, default, _ in describe_fields():
        row = f"| `{env}` | `{path}` | `{default}` |"
        assert row in text, f"README config table is missing or stale for {env}: expected {row!r}"


def test_readme_quick_start_has_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text
