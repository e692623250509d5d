"""`make run` embeds exactly what the environment leaves unset, and passes the rest through."""

import configparser
import shlex
import socket
from pathlib import Path

import pytest

from devstack.__main__ import taken_ports
from devstack.__main__ import taken_ports_message
from devstack.environment import read_environment
from devstack.plan import make_plan
from devstack.supervisor_conf import render
from tests.support.ferretdb import free_port

ROOT = Path("/project")
BIN = ROOT / ".venv" / "bin"


def plan_for(**env):
    return make_plan({"PATH": "/usr/bin", **env}, ROOT, BIN)


def programs(plan):
    return {program.name: program for program in plan.programs}


def test_bare_environment_embeds_ferretdb_sqlite_queue_and_mail_sink():
    plan = plan_for()

    assert list(programs(plan)) == ["ferretdb", "mailsink", "web", "worker", "bootstrap"]
    assert plan.child_env["MONGODB_URI"] == "mongodb://127.0.0.1:27017/mailjobs"
    assert plan.child_env["HUEY_SQLITE_PATH"] == "/project/var/huey.db"
    assert plan.child_env["MAIL_SERVER"] == "127.0.0.1"
    assert plan.child_env["MAIL_PORT"] == "8025"
    assert plan.url == "http://127.0.0.1:5000"


def test_embedded_services_start_before_the_app():
    by_name = programs(plan_for())

    assert by_name["ferretdb"].priority < by_name["web"].priority
    assert by_name["mailsink"].priority < by_name["worker"].priority


def test_ferretdb_listens_on_ferretdb_port_with_data_under_var():
    plan = plan_for(FERRETDB_PORT="27999")
    command = programs(plan)["ferretdb"].command

    assert command[0] == "/project/var/bin/ferretdb"
    assert "--listen-addr=127.0.0.1:27999" in command
    assert "--sqlite-url=file:/project/var/ferretdb/" in command
    assert "--debug-addr=-" in command
    assert "--telemetry=disable" in command
    assert plan.child_env["MONGODB_URI"] == "mongodb://127.0.0.1:27999/mailjobs"


def test_external_mongodb_is_passed_through_and_nothing_embedded():
    plan = plan_for(MONGODB_URI="mongodb://db.internal:27017/prod")

    assert "ferretdb" not in programs(plan)
    assert plan.child_env["MONGODB_URI"] == "mongodb://db.internal:27017/prod"


def test_empty_mongodb_uri_counts_as_unset():
    assert "ferretdb" in programs(plan_for(MONGODB_URI=""))


def test_external_mail_server_is_passed_through_and_no_sink():
    plan = plan_for(MAIL_SERVER="smtp.example.com", MAIL_PORT="587")

    assert "mailsink" not in programs(plan)
    assert plan.child_env["MAIL_SERVER"] == "smtp.example.com"
    assert plan.child_env["MAIL_PORT"] == "587"


def test_mail_sink_listens_on_mail_port():
    plan = plan_for(MAIL_PORT="2525")

    assert shlex.join(programs(plan)["mailsink"].command).endswith(
        "-m devstack.mail_sink --host 127.0.0.1 --port 2525 --dir /project/var/mail"
    )
    assert plan.child_env["MAIL_PORT"] == "2525"


def test_redis_url_replaces_the_sqlite_queue():
    plan = plan_for(REDIS_URL="redis://localhost:6379/0")

    assert plan.child_env["REDIS_URL"] == "redis://localhost:6379/0"
    assert "HUEY_SQLITE_PATH" not in plan.child_env


def test_relative_huey_sqlite_path_is_made_absolute():
    assert plan_for(HUEY_SQLITE_PATH="tmp/q.db").child_env["HUEY_SQLITE_PATH"] == "/project/tmp/q.db"


def test_web_uses_the_shared_gunicorn_config_and_binds_port_with_web_concurrency():
    plan = plan_for(PORT="8080", WEB_CONCURRENCY="3")
    command = shlex.join(programs(plan)["web"].command)

    # gunicorn.conf.py (gevent workers, header timeout, no control socket) is compose's too.
    assert command == (
        "/project/.venv/bin/gunicorn --config /project/gunicorn.conf.py wsgi:app --bind 127.0.0.1:8080 --workers 3"
    )
    assert plan.url == "http://127.0.0.1:8080"


def test_worker_stops_gracefully_with_sigterm():
    worker = programs(plan_for(HUEY_WORKERS="2"))["worker"]

    assert shlex.join(worker.command).startswith(
        "/project/.venv/bin/huey_consumer worker.huey --workers 2 --worker-type thread"
    )
    assert worker.command[-2:] == ["--graceful-signal", "TERM"]
    assert (worker.stopsignal, worker.stopwaitsecs) == ("TERM", 30)


def test_children_get_unbuffered_output_and_the_venv_first_on_path():
    env = plan_for().child_env

    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"] == "/project/.venv/bin:/usr/bin"


def test_a_port_that_is_not_a_number_is_a_clear_error():
    with pytest.raises(ValueError, match="PORT='abc'"):
        plan_for(PORT="abc")


def test_real_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("MAIL_SERVER=smtp.from-dotenv.test\nPORT=6000\nSECRET_KEY=dev\n")

    env = read_environment({"MAIL_SERVER": "smtp.real.test"}, dotenv)

    assert env == {"MAIL_SERVER": "smtp.real.test", "PORT": "6000", "SECRET_KEY": "dev"}


def test_missing_dotenv_is_fine(tmp_path):
    assert read_environment({"A": "1"}, tmp_path / ".env") == {"A": "1"}


def test_supervisord_config_runs_every_program_into_one_stream():
    conf = configparser.RawConfigParser()
    conf.read_string(render(plan_for(), ROOT))

    assert conf["supervisord"]["nodaemon"] == "true"
    for name in ("ferretdb", "mailsink", "web", "worker"):
        section = conf[f"program:{name}"]
        assert section["autorestart"] == "true"
        assert section["directory"] == "/project"
        assert section["stdout_logfile"] == "/dev/fd/1"
        assert section["stdout_logfile_maxbytes"] == "0"
        assert section["redirect_stderr"] == "true"
    assert conf["program:worker"]["stopsignal"] == "TERM"
    # The bootstrap runs once: an exit is the end of it, not a crash to restart.
    assert (conf["program:bootstrap"]["autorestart"], conf["program:bootstrap"]["startsecs"]) == ("false", "0")


def test_percent_signs_are_escaped_for_supervisord():
    text = render(make_plan({}, Path("/100%/app"), Path("/100%/app/.venv/bin")), Path("/100%/app"))

    assert "directory=/100%%/app\n" in text


def test_bootstrap_runs_last_and_is_told_the_url_and_where_mail_lands():
    by_name = programs(plan_for(PORT="5050"))
    bootstrap = by_name["bootstrap"]

    assert bootstrap.priority > max(p.priority for name, p in by_name.items() if name != "bootstrap")
    assert shlex.join(bootstrap.command) == (
        "/project/.venv/bin/python -m devstack.bootstrap --url http://127.0.0.1:5050 --mail-dir var/mail"
    )
    external = programs(plan_for(MAIL_SERVER="smtp.example.com", MAIL_PORT="587"))["bootstrap"]
    assert external.command[-2:] == ["--mail-server", "smtp.example.com:587"]


def test_the_ports_the_stack_will_take_are_named_by_their_variable():
    assert plan_for(FERRETDB_PORT="27555", PORT="5050", MAIL_PORT="2525").ports == {
        "FERRETDB_PORT": 27555,
        "MAIL_PORT": 2525,
        "PORT": 5050,
    }
    # External services take no local port.
    assert plan_for(MONGODB_URI="mongodb://db/x", MAIL_SERVER="smtp.example.com").ports == {"PORT": 5000}


def test_a_port_another_program_listens_on_is_named_with_a_free_one_to_use():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        ports = plan_for(FERRETDB_PORT=str(busy), PORT=str(free_port()), MAIL_PORT=str(free_port())).ports

        taken = taken_ports(ports)
        text = taken_ports_message(taken)

    assert taken == [("FERRETDB_PORT", busy)]
    assert f"FERRETDB_PORT={busy}" in text
    suggested = int(text.split("FERRETDB_PORT=")[2].split()[0])
    assert suggested > busy
    with socket.socket() as probe:  # the suggestion really is free
        probe.bind(("127.0.0.1", suggested))
