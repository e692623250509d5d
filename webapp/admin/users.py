"""Admins: the users, their roles, promote and demote (never the last admin), disable and enable."""

from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp import operations
from webapp.admin.blueprint import bp
from webapp.services.accounts import disabling
from webapp.services.accounts import users as accounts  # `users` is a page of them below
from webapp.services.errors import Conflict
from webapp.services.errors import ValidationFailed
from webapp.services.jobs import actions
from webapp.services.validation import RoleInput
from webapp.services.validation import parse
from webapp.services.validation import parse_page
from webapp.web.audit_trail import audited
from webapp.web.htmx import is_partial


def _listing(args):
    """One page of users with what their rows show (job counts, whether demotion is allowed)."""
    page, per_page = parse_page(args)
    users, total = accounts.list_users(page, per_page)
    return {
        "users": users,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": max(1, -(-total // per_page)),
        "job_counts": actions.count_by_owner(u.id for u in users),
        "admin_count": accounts.count_admins(),
    }


@bp.get("/users")
def users_page():
    """All accounts, oldest first, with their role and how many jobs they have."""
    return render_template("admin/users.html", **_listing(request.args))


def _act_on_user(user_id, audit_action, action, done, detail=None, leave=None):
    """Run `action()` (which returns the user) audited as `audit_action` (None: it audits itself);
    HTMX gets the page's rows back, a form a redirect.

    The rows come back whole: who may be demoted or disabled can change with any action.
    `done(user)` says what happened, for the flash message; `leave(user)` may answer
    instead after a success (say, an admin who demoted themselves).
    """
    problem, status = None, 200
    try:
        if audit_action is None:  # the action audits itself (webapp.operations)
            user = action()
        else:
            with audited(audit_action, current_user, ("user", user_id, None), detail=detail) as event:
                user = event.target = action()
    except (Conflict, ValidationFailed) as exc:
        problem, status = exc.message, exc.status
        user = accounts.get_user(user_id)
        if user is None:
            raise
    if problem is None and leave is not None and (response := leave(user)) is not None:
        return response
    listing = _listing(request.form)
    if is_partial():
        return render_template("admin/_user_rows.html", problem=problem, problem_user=user.id, **listing), status
    flash(problem or done(user), "error" if problem else "success")
    return redirect(url_for("admin.users_page", page=listing["page"] if listing["page"] > 1 else None))


@bp.post("/users/<user_id>/role")
def set_role(user_id):
    """Promote or demote; demoting yourself leaves the admin panel."""
    role = request.form.get("role", "")

    def change():
        return accounts.set_role(user_id, parse(RoleInput, {"role": role}).role)

    def leave_if_self_demoted(user):
        if user.id != current_user.id or user.is_admin:
            return None
        # Demoted yourself: the admin panel is closed to you from now on.
        flash("You are no longer an admin.", "success")
        if is_partial():
            response = make_response("", 204)
            response.headers["HX-Redirect"] = url_for("pages.jobs_page")
            return response
        return redirect(url_for("pages.jobs_page"))

    return _act_on_user(
        user_id,
        "role_change",
        change,
        lambda user: f"{user.email} is now {'an admin' if user.is_admin else 'a user'}.",
        detail=f"role set to {role}",
        leave=leave_if_self_demoted,
    )


@bp.post("/users/<user_id>/disable")
def disable_user(user_id):
    """Disable an account: it cannot sign in, its sessions and tokens stop, its jobs wait."""
    return _act_on_user(
        user_id,
        "account_disable",
        lambda: disabling.disable_account(user_id, by=current_user),
        lambda user: f"{user.email} is disabled: signed out everywhere, pending emails held.",
    )


@bp.post("/users/<user_id>/enable")
def enable_user(user_id):
    """Enable an account again; its held emails that fell due are queued at once."""

    return _act_on_user(
        user_id,
        None,
        lambda: operations.enable_account(current_user, user_id, request.remote_addr),
        lambda user: f"{user.email} is enabled again.",
    )
