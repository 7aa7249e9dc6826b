"""API errors, one class per Kubernetes status reason.

They travel over the wire as Kubernetes ``Status`` dicts (``to_status`` /
``from_status``) and print as kubectl does (``describe``). Pure: no I/O, no imports
of ours.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    @staticmethod
    def from_status(status: Any) -> ApiError:
        """Rebuild the matching error class from a Status dict (as a client sees it)."""
        if not isinstance(status, dict):
            return InternalError(f"malformed error status: {status!r}"[:200])
        reason = status.get("reason")
        code = status.get("code")
        message = str(status.get("message", ""))
        details = status.get("details") if isinstance(status.get("details"), dict) else None
        cls = _BY_REASON.get(reason) if isinstance(reason, str) else None
        if cls is None:
            cls = _BY_CODE.get(code, InternalError) if isinstance(code, int) else InternalError
        return cls(message, details=details)

    def describe(self) -> str:
        """One line, as kubectl prints it."""
        if isinstance(self, Invalid):
            return self.message
        return f"Error from server ({self.reason}): {self.message}"


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Expired(ApiError):
    """A watch or list asked for a resourceVersion older than the history kept (HTTP 410)."""

    code, reason = 410, "Expired"


class TooLarge(ApiError):
    code, reason = 413, "RequestEntityTooLarge"


class Invalid(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


class InternalError(ApiError):
    code, reason = 500, "InternalError"


class ServiceUnavailable(ApiError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(ApiError):
    code, reason = 504, "Timeout"


_ALL = (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, AlreadyExists,
    Conflict, Expired, TooLarge, Invalid, TooManyRequests, InternalError,
    ServiceUnavailable, Timeout,
)
_BY_REASON: dict[str, type[ApiError]] = {c.reason: c for c in _ALL}
_BY_CODE: dict[int, type[ApiError]] = {}
for _c in _ALL:
    _BY_CODE.setdefault(_c.code, _c)


def field_path(*parts: str | int) -> str:
    """Join path parts the way Kubernetes prints them: ``spec.containers[0].name``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += "." + part
        else:
            out = part
    return out


def invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> Invalid:
    """An Invalid error listing each ``(field path, problem)`` as the API server does:

    ``The Pod "web" is invalid: spec.containers[0].command: Required value``
    """
    text = ", ".join(f"{field}: {problem}" if field else problem for field, problem in causes)
    if len(causes) > 1:
        text = "[" + text + "]"
    return Invalid(
        f'The {kind} "{name}" is invalid: {text}',
        details={
            "name": name,
            "kind": kind,
            "causes": [{"field": f, "message": m} for f, m in causes],
        },
    )
