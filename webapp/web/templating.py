"""What every template can use: times in the viewer's zone, the job statuses and their actions."""

from flask_login import current_user

from webapp.models import JobStatus
from webapp.services.jobs import actions
from webapp.services.jobs.job_timing import account_windows
from webapp.services.recurring.schedules import next_runs
from webapp.services.scheduling import timing
from webapp.timeutil import isoformat_z
from webapp.web.localtime import DEFAULT_ZONE
from webapp.web.localtime import format_local

# The zone picker's choices: every IANA zone, sorted (UTC first).
ZONES = ["UTC", *sorted(name for name in timing.available_zones() if name != "UTC")]


def viewer_zone():
    """The signed-in user's zone (kept on the account), UTC for visitors."""
    if current_user.is_authenticated and current_user.timezone:
        return current_user.timezone
    return DEFAULT_ZONE


def local_time(value, zone_name=None):
    """Jinja filter: a UTC datetime as wall-clock time in `zone_name` or the viewer's zone."""
    return format_local(value, zone_name or viewer_zone())


def init_app(app):
    """Register the filters and globals the templates rely on."""
    app.add_template_filter(local_time, "local")
    app.add_template_filter(isoformat_z, "isoz")
    app.jinja_env.globals.update(
        statuses=JobStatus.ALL,
        cancellable=actions.CANCELLABLE,
        requeueable=actions.REQUEUEABLE,
        active_statuses=actions.ACTIVE,
        zones=ZONES,
        next_runs=next_runs,
    )

    @app.context_processor
    def viewer():
        windows = timing.windows_text(account_windows(current_user)) if current_user.is_authenticated else ""
        return {"viewer_zone": viewer_zone(), "account_windows": windows}
