"""Configuration read from the environment: parsed strictly, unsafe production refused."""

import pytest

from webapp.config import load_config


@pytest.fixture()
def env(monkeypatch):
    for name in (
        "SECRET_KEY",
        "JWT_SECRET_KEY",
        "MAIL_USE_TLS",
        "MAIL_SERVER",
        "MAIL_PORT",
        "IN_DOUBT_POLICY",
        "MAIL_TLS_VERIFY",
        "MAIL_TLS_CA_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_production_refuses_the_dev_secrets(env):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        load_config("production")


def test_production_refuses_short_or_dev_looking_secrets(env):
    env.setenv("SECRET_KEY", "dev-secret-key-change-in-production-please")
    env.setenv("JWT_SECRET_KEY", "x" * 40)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        load_config("production")
    env.setenv("SECRET_KEY", "too-short")
    with pytest.raises(RuntimeError):
        load_config("production")


def test_production_starts_with_real_secrets(env):
    env.setenv("SECRET_KEY", "k" * 48)
    env.setenv("JWT_SECRET_KEY", "j" * 48)
    config = load_config("production")
    assert config.SESSION_COOKIE_SECURE is True


@pytest.mark.parametrize("raw, expected", [("0", False), ("false", False), ("1", True), ("TRUE", True), ("", False)])
def test_booleans_from_the_environment_are_parsed(env, raw, expected):
    env.setenv("MAIL_USE_TLS", raw)
    assert load_config("development").MAIL_USE_TLS is expected


def test_a_bad_boolean_or_number_is_a_clear_error(env):
    env.setenv("MAIL_USE_TLS", "maybe")
    with pytest.raises(ValueError, match="MAIL_USE_TLS"):
        load_config("development")
    env.setenv("MAIL_USE_TLS", "0")
    env.setenv("MAIL_PORT", "twenty-five")
    with pytest.raises(ValueError, match="MAIL_PORT"):
        load_config("development")


def test_mail_port_defaults_to_the_sink_or_to_smtp(env):
    assert load_config("development").MAIL_PORT == 8025
    env.setenv("MAIL_SERVER", "smtp.example.com")
    assert load_config("development").MAIL_PORT == 25


def test_the_smtp_certificate_is_verified_unless_switched_off_and_a_ca_file_must_exist(env, tmp_path):
    config = load_config("development")
    assert config.MAIL_TLS_VERIFY is True and config.MAIL_TLS_CA_FILE is None
    env.setenv("MAIL_TLS_VERIFY", "false")
    assert load_config("development").MAIL_TLS_VERIFY is False
    env.setenv("MAIL_TLS_CA_FILE", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(ValueError, match="MAIL_TLS_CA_FILE=.*missing-ca.pem.* is not a file"):
        load_config("development")
    (tmp_path / "missing-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_config("development").MAIL_TLS_CA_FILE == str(tmp_path / "missing-ca.pem")


def test_unknown_in_doubt_policy_is_refused(env):
    env.setenv("IN_DOUBT_POLICY", "maybe")
    with pytest.raises(ValueError, match="IN_DOUBT_POLICY"):
        load_config("development")


def test_unknown_app_env_is_refused():
    with pytest.raises(ValueError, match="APP_ENV"):
        load_config("staging")


def test_mongodb_uri_follows_ferretdb_port_from_the_environment_or_dotenv(tmp_path):
    from webapp.config import mongodb_uri

    dotenv = tmp_path / ".env"
    assert mongodb_uri({}, dotenv) == "mongodb://127.0.0.1:27017/mailjobs"
    assert mongodb_uri({"FERRETDB_PORT": "27555"}, dotenv) == "mongodb://127.0.0.1:27555/mailjobs"
    dotenv.write_text("FERRETDB_PORT=27666\n")
    assert mongodb_uri({}, dotenv) == "mongodb://127.0.0.1:27666/mailjobs"
    # The real environment wins over .env, as it does for `make run`.
    assert mongodb_uri({"FERRETDB_PORT": "27555"}, dotenv) == "mongodb://127.0.0.1:27555/mailjobs"


def test_an_explicit_mongodb_uri_wins_and_an_empty_one_counts_as_unset(tmp_path):
    from webapp.config import mongodb_uri

    dotenv = tmp_path / ".env"
    dotenv.write_text("MONGODB_URI=mongodb://db.from-dotenv/x\nFERRETDB_PORT=27666\n")
    assert mongodb_uri({}, dotenv) == "mongodb://db.from-dotenv/x"
    assert mongodb_uri({"MONGODB_URI": "mongodb://db.real/y"}, dotenv) == "mongodb://db.real/y"
    assert mongodb_uri({"MONGODB_URI": ""}, dotenv) == "mongodb://127.0.0.1:27666/mailjobs"


@pytest.mark.parametrize("raw", ["abc", "0", "70000"])
def test_a_bad_ferretdb_port_is_a_clear_error(tmp_path, raw):
    from webapp.config import mongodb_uri

    with pytest.raises(ValueError, match="FERRETDB_PORT"):
        mongodb_uri({"FERRETDB_PORT": raw}, tmp_path / ".env")


def test_the_dev_stack_and_the_app_agree_on_the_database(env, tmp_path):
    from devstack.plan import make_plan
    from webapp.config import mongodb_uri

    for environ in ({}, {"FERRETDB_PORT": "27555"}):
        plan = make_plan({"PATH": "/usr/bin", **environ}, tmp_path, tmp_path / "bin")
        assert plan.child_env["MONGODB_URI"] == mongodb_uri(environ, tmp_path / ".env")
