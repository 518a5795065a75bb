"""Errors raised by switchd.api.

* ApiError(status, code, detail)   answered as JSON ``{"error": {"code": code, "detail": detail}}``
  * BadRequest         400 bad_request: a query parameter, a path or a JSON body that does not fit
  * Unauthorized       401 unauthorized: no or a wrong ``Authorization: Bearer`` token
  * Forbidden          403 forbidden: switched off in the configuration (chaos)
  * NotFound           404 not_found: no such path, call, CDR or trace
  * MethodNotAllowed   405 method_not_allowed: the path exists; .allow lists its methods
  * Unprocessable      422 unprocessable: well-formed but refused (a bad rate deck, an unknown policy)
  * Unavailable        503 unavailable: a server of the node is not answering (restarting, overloaded)
* ChaosKill            not an HTTP answer: the exit reason of a process POST /chaos killed

The other codes of the contract (payload_too_large, unsupported_media_type, timeout, internal)
are raised by the HTTP layer itself as plain ApiErrors.
"""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than success: HTTP `status`, a snake_case `code` and a `detail` for a human."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class BadRequest(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, "bad_request", detail)


class Unauthorized(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(401, "unauthorized", detail)


class Forbidden(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", detail)


class NotFound(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(404, "not_found", detail)


class MethodNotAllowed(ApiError):
    def __init__(self, method: str, path: str, allow: tuple[str, ...]) -> None:
        super().__init__(405, "method_not_allowed", f"{method} is not allowed on {path} (allowed: {', '.join(allow)})")
        self.allow = allow


class Unprocessable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "unprocessable", detail)


class Unavailable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(503, "unavailable", detail)


class ChaosKill(Exception):
    """The exit reason of a process killed on purpose by POST /chaos: an abnormal exit, so restarted."""
