"""What can go wrong in the decision service's domain, and the one place it becomes HTTP."""

from __future__ import annotations

from ..errors import BackdropError


class ServiceError(BackdropError):
    """A request the service refuses, with the reason a caller can act on."""

    status = 500


class Invalid(ServiceError):
    """The request is well-formed but breaks a limit or a rule (422)."""

    status = 422


class Unauthorized(ServiceError):
    """A missing or wrong API key (401)."""

    status = 401


class NotFound(ServiceError):
    """An unknown item, placement, decision or creative (404)."""

    status = 404


class Conflict(ServiceError):
    """The request clashes with what is logged: a reused request_id, a late reward, a model race (409)."""

    status = 409


class Unavailable(ServiceError):
    """A dependency (the event log, a damaged file) cannot serve the request now (503)."""

    status = 503


def http_status(e: ServiceError) -> int:
    """The status code of a domain error: the only mapping from the domain to HTTP."""
    return e.status
