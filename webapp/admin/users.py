"""Admins: the users, their roles, promote and demote (never the last admin)."""

from flask import flash
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp.admin.blueprint import bp
from webapp.errors import Conflict
from webapp.errors import ValidationFailed
from webapp.htmx import is_partial
from webapp.services import accounts
from webapp.services import jobs
from webapp.services.validation import RoleInput
from webapp.services.validation import parse
from webapp.services.validation import parse_page


def _listing(args):
    """One page of users with what their rows show (job counts, whether demotion is allowed)."""
    page, per_page = parse_page(args)
    users, total = accounts.list_users(page, per_page)
    return {"users": users, "total": total, "page": page, "per_page": per_page,
            "pages": max(1, -(-total // per_page)), "job_counts": jobs.count_by_owner(u.id for u in users),
            "admin_count": accounts.count_admins()}


@bp.get("/users")
def users_page():
    """All accounts, oldest first, with their role and how many jobs they have."""
    return render_template("admin/users.html", **_listing(request.args))


@bp.post("/users/<user_id>/role")
def set_role(user_id):
    """Promote or demote; HTMX gets the page's rows back (who may be demoted can change)."""
    problem, status = None, 200
    try:
        role = parse(RoleInput, {"role": request.form.get("role", "")}).role
        user = accounts.set_role(user_id, role)
    except (Conflict, ValidationFailed) as exc:
        problem, status = exc.message, exc.status
        user = accounts.get_user(user_id)
        if user is None:
            raise
    if user.id == current_user.id and not user.is_admin:
        # Demoted yourself: the admin panel is closed to you from now on.
        flash("You are no longer an admin.", "success")
        if is_partial():
            response = make_response("", 204)
            response.headers["HX-Redirect"] = url_for("pages.jobs_page")
            return response
        return redirect(url_for("pages.jobs_page"))
    listing = _listing(request.form)
    if is_partial():
        return render_template("admin/_user_rows.html", problem=problem, problem_user=user.id, **listing), status
    flash(problem or f"{user.email} is now {'an admin' if user.is_admin else 'a user'}.",
          "error" if problem else "success")
    return redirect(url_for("admin.users_page", page=listing["page"] if listing["page"] > 1 else None))
