"""flask-jwt-extended hooks: load the user fresh, honour revocations, answer errors in our JSON shape."""

from flask import g

from webapp.errors import json_error
from webapp.services import accounts


def register_jwt_callbacks(jwt):
    """Wire the JWTManager to our accounts and error format."""

    # flask-jwt-extended asks whether the token is revoked, then for its user: one read answers
    # both (the revocations are on the user document), kept in `g` for this token only.
    @jwt.user_lookup_loader
    def load_user(_header, payload):
        jti, user = g.pop("_token_user", (None, None))
        return user if jti == payload["jti"] else accounts.get_user(payload["sub"])

    @jwt.token_in_blocklist_loader
    def is_revoked(_header, payload):
        user = accounts.get_user(payload["sub"])
        g._token_user = (payload["jti"], user)
        return accounts.is_token_revoked(user, payload)

    @jwt.unauthorized_loader
    def missing_token(reason):
        return json_error(401, "unauthorized", "Send a bearer token: Authorization: Bearer <token>.")

    @jwt.invalid_token_loader
    def invalid_token(reason):
        return json_error(401, "invalid_token", f"The token is not valid: {reason}.")

    @jwt.expired_token_loader
    def expired_token(_header, _payload):
        return json_error(401, "token_expired", "The token has expired; log in again.")

    @jwt.revoked_token_loader
    def revoked_token(_header, _payload):
        return json_error(401, "token_revoked", "The token was revoked by logout; log in again.")

    @jwt.user_lookup_error_loader
    def user_gone(_header, _payload):
        return json_error(401, "unknown_user", "The account for this token no longer exists.")
