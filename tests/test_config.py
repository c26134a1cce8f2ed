"""Settings from the environment: defaults, and one-line errors naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import DEV_SECRET_KEY, ConfigError, Settings

SECRET = "s" * 32


def test_embedded_defaults(tmp_path):
    with pytest.warns(UserWarning, match="ELIMU_SECRET_KEY is unset"):
        settings = Settings.from_env({"ELIMU_INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'elimu.sqlite3'}"
    assert settings.embedded_redis and settings.redis_url is None
    assert settings.sms_backend == "outbox"
    assert settings.dev_mode and settings.secret_key == DEV_SECRET_KEY
    assert settings.ussd_code == "*384*1234#"


def test_plain_postgresql_urls_use_psycopg():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db:5432/elimu", "ELIMU_SECRET_KEY": SECRET})
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/elimu"
    assert not settings.dev_mode  # a real database means production unless ELIMU_ENV says otherwise


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://localhost:port"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://"}, "REDIS_URL"),
        ({"ELIMU_ENV": "production"}, "ELIMU_SECRET_KEY"),
        ({"DATABASE_URL": "postgresql://u@h/db"}, "ELIMU_SECRET_KEY"),
        ({"ELIMU_SECRET_KEY": "short"}, "ELIMU_SECRET_KEY"),
        ({"ELIMU_ENV": "staging"}, "ELIMU_ENV"),
        ({"SMS_BACKEND": "carrier-pigeon"}, "SMS_BACKEND"),
        ({"SMS_BACKEND": "africastalking"}, "AT_USERNAME"),
        ({"AT_API_BASE_URL": "ftp://x"}, "AT_API_BASE_URL"),
        ({"ELIMU_SMS_RATE": "fast"}, "ELIMU_SMS_RATE"),
        ({"ELIMU_SMS_CONCURRENCY": "0"}, "ELIMU_SMS_CONCURRENCY"),
        ({"ELIMU_SMS_CONCURRENCY": "65"}, "ELIMU_SMS_CONCURRENCY"),
        ({"ELIMU_SMS_CONCURRENCY": "2.5"}, "ELIMU_SMS_CONCURRENCY"),
        ({"ELIMU_ALLOWED_NETWORKS": "10.0.0.0/33"}, "ELIMU_ALLOWED_NETWORKS"),
        ({"ELIMU_DB_STATEMENT_TIMEOUT_MS": "-1"}, "ELIMU_DB_STATEMENT_TIMEOUT_MS"),
        ({"ELIMU_DB_STATEMENT_TIMEOUT_MS": "3s"}, "ELIMU_DB_STATEMENT_TIMEOUT_MS"),
        ({"ELIMU_DB_CONNECT_TIMEOUT_S": "1.5"}, "ELIMU_DB_CONNECT_TIMEOUT_S"),
        ({"ELIMU_SMS_RATE": "nan"}, "ELIMU_SMS_RATE"),  # would reach the throttle as a NaN wait
        ({"ELIMU_TRUSTED_PROXIES": "inf"}, "ELIMU_TRUSTED_PROXIES"),  # was an OverflowError traceback
        ({"ELIMU_TRUSTED_PROXIES": "1.5"}, "ELIMU_TRUSTED_PROXIES"),  # was silently 1
        ({"ELIMU_MAX_BODY_BYTES": "nan"}, "ELIMU_MAX_BODY_BYTES"),  # was a ValueError traceback
        ({"ELIMU_MAX_BODY_BYTES": "0"}, "ELIMU_MAX_BODY_BYTES"),  # every callback would get 413
        ({"ELIMU_USSD_HOPS_PER_MINUTE": "inf"}, "ELIMU_USSD_HOPS_PER_MINUTE"),
        ({"ELIMU_LOG_FORMAT": "xml"}, "ELIMU_LOG_FORMAT"),  # was taken as text
        ({"ELIMU_USSD_CODE": "384"}, "ELIMU_USSD_CODE"),
        ({"ELIMU_USSD_CODE": "*384*1234"}, "ELIMU_USSD_CODE"),
        ({"ELIMU_USSD_CODE": "*384*" + "1" * 19 + "#"}, "ELIMU_USSD_CODE"),  # 25: screens naming it could pass 160
        ({"ELIMU_INSTANCE_PATH": "/etc/hostname"}, "ELIMU_INSTANCE_PATH"),  # was a FileExistsError traceback
        ({"ELIMU_INSTANCE_PATH": "/etc/hostname/elimu"}, "ELIMU_INSTANCE_PATH"),
    ],
)
def test_bad_settings_give_one_line_naming_the_variable(env, variable):
    base = {} if variable == "ELIMU_SECRET_KEY" else {"ELIMU_SECRET_KEY": SECRET}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**base, **env})
    message = str(caught.value)
    assert variable in message and "\n" not in message


def test_a_missing_secret_key_says_why_production_mode_and_what_to_do():
    """A first try with DATABASE_URL set (production by default) met 'required outside development
    mode (ELIMU_ENV=production)', naming a variable the operator never set."""
    with pytest.raises(ConfigError) as implied:
        Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})
    assert "the default once DATABASE_URL is set" in str(implied.value) and "16+ characters" in str(implied.value)
    with pytest.raises(ConfigError) as chosen:
        Settings.from_env({"ELIMU_ENV": "production"})
    assert "(ELIMU_ENV=production)" in str(chosen.value)


@pytest.mark.parametrize("name", ["DATABASE_URL", "ELIMU_SECRET_KEY", "ELIMU_WEBHOOK_TOKEN", "AT_API_KEY"])
def test_a_change_me_left_from_the_example_env_file_is_refused_without_its_value(name):
    example = Path(__file__).resolve().parents[1] / "deploy" / "elimu.env.example"
    env = dict(line.split("=", 1) for line in example.read_text().splitlines() if line and not line.startswith("#"))
    env = {**env, "DATABASE_URL": "postgresql://u:p@db/elimu", "ELIMU_SECRET_KEY": SECRET,
           "ELIMU_WEBHOOK_TOKEN": "t" * 32, "AT_API_KEY": "atsk_real", name: env[name]}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == (f"{name} still holds the CHANGE-ME placeholder of deploy/elimu.env.example: "
                                 "set it (docs/deploy.md)")


def test_checked_settings_keep_their_good_values(tmp_path):
    settings = Settings.from_env({"ELIMU_SECRET_KEY": SECRET, "ELIMU_INSTANCE_PATH": str(tmp_path / "new"),
                                  "ELIMU_USSD_CODE": "*483*1#", "ELIMU_LOG_FORMAT": "JSON",
                                  "ELIMU_TRUSTED_PROXIES": "2", "ELIMU_USSD_HOPS_PER_MINUTE": "0"})
    assert (settings.ussd_code, settings.log_format) == ("*483*1#", "json")
    assert (settings.trusted_proxies, settings.ussd_hops_per_minute) == (2, 0)
    assert settings.instance_path == tmp_path / "new" and not settings.instance_path.exists()


def test_requests_in_flight_to_the_provider_per_worker_default_to_eight():
    assert Settings.from_env({"ELIMU_SECRET_KEY": SECRET}).sms_concurrency == 8
    assert Settings.from_env({"ELIMU_SECRET_KEY": SECRET, "ELIMU_SMS_CONCURRENCY": "32"}).sms_concurrency == 32


def test_at_credentials_lose_the_newline_a_file_brings():
    settings = Settings.from_env({"ELIMU_SECRET_KEY": SECRET, "SMS_BACKEND": "africastalking",
                                  "AT_USERNAME": " elimu\n", "AT_API_KEY": "atsk_123\n"})
    assert (settings.at_username, settings.at_api_key) == ("elimu", "atsk_123")


def test_database_waits_default_to_three_seconds_and_zero_means_none():
    settings = Settings.from_env({"ELIMU_SECRET_KEY": SECRET})
    assert (settings.db_statement_timeout_ms, settings.db_connect_timeout_s) == (3000, 3)
    settings = Settings.from_env({"ELIMU_SECRET_KEY": SECRET, "ELIMU_DB_STATEMENT_TIMEOUT_MS": "0",
                                  "ELIMU_DB_CONNECT_TIMEOUT_S": "10"})
    assert (settings.db_statement_timeout_ms, settings.db_connect_timeout_s) == (0, 10)


def _elimu(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ELIMU_", "DATABASE_URL", "REDIS_URL", "SMS_", "AT_"))}
    clean.update(ELIMU_INSTANCE_PATH=str(tmp_path), **env)
    elimu = Path(sys.executable).with_name("elimu")
    return subprocess.run([str(elimu), "db", "upgrade"], env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "served"), [
    ({}, False),
    ({"ELIMU_SIMULATOR": "true"}, False),  # anyone could act as any phone: ignored without the token
    ({"ELIMU_SIMULATOR": "true", "ELIMU_WEBHOOK_TOKEN": "t" * 32}, True),
    ({"ELIMU_WEBHOOK_TOKEN": "t" * 32}, False),
    ({"ELIMU_ENV": "development"}, True),
    ({"ELIMU_ENV": "development", "ELIMU_SIMULATOR": "false"}, False),
])
def test_the_simulator_is_served_outside_development_only_with_the_webhook_token(env, served):
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db/elimu", "ELIMU_SECRET_KEY": SECRET, **env})
    assert settings.simulator_served is served


def test_cli_refuses_production_without_a_secret_key_in_one_line(tmp_path):
    done = _elimu(tmp_path, ELIMU_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "ELIMU_SECRET_KEY" in done.stderr
    assert not (tmp_path / "x.sqlite3").exists()


def test_cli_names_a_bad_database_url_in_one_line(tmp_path):
    done = _elimu(tmp_path, DATABASE_URL="mysql://nobody@nowhere/db", ELIMU_SECRET_KEY=SECRET)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "DATABASE_URL" in done.stderr


def test_cli_upgrades_an_embedded_database(tmp_path):
    done = _elimu(tmp_path, ELIMU_ENV="development", ELIMU_SECRET_KEY=SECRET)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "elimu.sqlite3").exists()


def test_readme_documents_every_variable_the_settings_read():
    source = (Path(__file__).resolve().parents[1] / "gateway" / "config.py").read_text(encoding="utf-8")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    names = set(re.findall(r'(?:env\.get|_number|_flag|_whole)\((?:env, )?"([A-Z_]+)"', source))
    assert "ELIMU_SMS_CONCURRENCY" in names
    assert {"DATABASE_URL", "REDIS_URL", "ELIMU_SECRET_KEY"} <= names
    assert [n for n in sorted(names) if f"`{n}`" not in readme] == []
