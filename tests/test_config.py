"""Config: defaults, file, environment overrides, and refusals naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from alerts.core.config import as_toml_defaults, load_settings
from alerts.core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_example_documents_every_key_with_the_embedded_default() -> None:
    with (ROOT / "config.example.toml").open("rb") as fh:
        example = tomllib.load(fh)
    assert example == as_toml_defaults()


def test_no_file_means_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(environ={})
    assert s.source == "embedded defaults"
    assert s.database.url == "sqlite+aiosqlite:///alerts.db"
    assert s.email.port == 8025


def test_file_and_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[email]\nhost = "relay.example.org"\nport = 587\nsecurity = "starttls"\n')
    s = load_settings(
        cfg,
        environ={
            "ALERTS_EMAIL_PASSWORD": "hunter2",
            "ALERTS_EMAIL_PORT": "2525",
            "ALERTS_TRACKING_OPENS": "true",
        },
    )
    assert (s.email.host, s.email.port, s.email.security, s.email.password) == (
        "relay.example.org",
        2525,
        "starttls",
        "hunter2",
    )
    assert s.tracking.opens is True
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('[email]\nport = "x"\n', {}, "{f}: [email] port has value 'x'. Not a valid int."),
        (
            '[email]\nsecurity = "ssl"\n',
            {},
            "{f}: [email] security has value 'ssl'. Must be one of: none, starttls, tls.",
        ),
        ("[emial]\nport = 1\n", {}, "{f}: unknown section [emial]."),
        ("[email]\nprot = 1\n", {}, "{f}: [email] prot is not a known key."),
        ('[tracking]\nopens = "maybe"\n', {}, "{f}: [tracking] opens has value 'maybe'. Not a valid bool."),
        ('[database]\nurl = "mysql://x"\n', {}, "{f}: [database] url must start with"),
        ('[scheduler]\ntimezone = "Mars/Base"\n', {}, "{f}: [scheduler] timezone has value 'Mars/Base'."),
        ("[email\n", {}, "{f}: not valid TOML"),
        (
            "",
            {"ALERTS_EMAIL_PORT": "-3"},
            "environment ALERTS_EMAIL_PORT: [email] port has value '-3'. Must not be negative.",
        ),
        ("", {"ALERTS_EMAIL_PASSWORD": "1"}, None),
    ],
)
def test_bad_values_name_file_key_and_problem(
    tmp_path: Path, text: str, env: dict[str, str], message: str | None
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    if message is None:
        load_settings(cfg, environ=env)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ=env)
    assert str(info.value).startswith(message.format(f=cfg))


def test_secret_values_are_never_repeated_in_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text("[email]\npassword = 12345\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert "12345" not in str(info.value)
    assert "[email] password has value '***'. Not a valid string." in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found\."):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("key", "problem"),
    [("change-me-in-production", "the shipped default"), ("tiny-key", "shorter than 16 characters")],
)
def test_serving_with_a_guessable_secret_is_refused(key: str, problem: str) -> None:
    from alerts.core.config import require_secret

    settings = load_settings(environ={"ALERTS_SERVER_SECRET_KEY": key})
    with pytest.raises(ConfigError) as info:
        require_secret(settings)
    assert str(info.value).startswith(
        f"{settings.source}: [server] secret_key is {problem}; set ALERTS_SERVER"
    )
    assert "tiny-key" not in str(info.value)  # a secret is never repeated
    require_secret(load_settings(environ={"ALERTS_SERVER_SECRET_KEY": "x" * 32}))  # a real one passes


def test_old_secret_keys_from_the_file_or_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('[server]\nold_secret_keys = ["first-old-key-0123456789", "second-old-key-012345"]\n')
    assert load_settings(cfg, environ={}).server.old_secret_keys == (
        "first-old-key-0123456789",
        "second-old-key-012345",
    )
    env = {"ALERTS_SERVER_OLD_SECRET_KEYS": "env-old-key-0123456789, other-old-key-0123456"}
    assert load_settings(cfg, environ=env).server.old_secret_keys == (
        "env-old-key-0123456789",
        "other-old-key-0123456",
    )
    cfg.write_text('[server]\nold_secret_keys = "first-old-key-0123456789"\n')
    assert load_settings(cfg, environ={}).server.old_secret_keys == ("first-old-key-0123456789",)
    cfg.write_text("[server]\nold_secret_keys = [12345]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(info.value) == f"{cfg}: [server] old_secret_keys has value '***'. Not a list of strings."


@pytest.mark.parametrize(
    ("old", "problem"),
    [("change-me-in-production", "the shipped default"), ("short-old", "shorter than 16 characters")],
)
def test_a_guessable_old_key_is_refused_too(old: str, problem: str) -> None:
    from alerts.core.config import require_secret

    settings = load_settings(
        environ={
            "ALERTS_SERVER_SECRET_KEY": "x" * 32,
            "ALERTS_SERVER_OLD_SECRET_KEYS": f"{'y' * 32},{old}",
        }
    )
    with pytest.raises(ConfigError) as info:
        require_secret(settings)
    assert str(info.value) == f"{settings.source}: [server] old_secret_keys: key 2 is {problem}; remove it."


@pytest.mark.parametrize("listen", ["9101", "127.0.0.1", "127.0.0.1:port", ":9101", "127.0.0.1:70000"])
def test_a_bad_metrics_listen_is_named(tmp_path: Path, listen: str) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text(f'[metrics]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(info.value).startswith(f"{cfg}: [metrics] listen has value {listen!r}. Must be HOST:PORT")


def test_metrics_listen_and_logging_format(tmp_path: Path) -> None:
    from alerts.core.config import listen_address

    cfg = tmp_path / "a.toml"
    cfg.write_text('[metrics]\nlisten = "[::1]:9102"\n[logging]\nformat = "json"\n')
    settings = load_settings(cfg, environ={})
    assert listen_address(settings.metrics.listen) == ("::1", 9102)
    assert settings.logging.format == "json"
    assert load_settings(cfg, environ={"ALERTS_METRICS_LISTEN": ""}).metrics.listen == ""  # off
    with pytest.raises(ConfigError, match=r"\[logging\] format has value 'xml'. Must be one of: text, json."):
        load_settings(cfg, environ={"ALERTS_LOGGING_FORMAT": "xml"})
