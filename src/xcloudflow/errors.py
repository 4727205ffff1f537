"""Domain errors raised by services; `server/errors.py` maps them to HTTP answers.

Services never raise HTTP exceptions: these classes carry a stable machine code, a message a person
understands, and optional structured details.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class Invalid(DomainError):
    code = "invalid"
    status = 400


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class MethodNotAllowed(DomainError):
    code = "method_not_allowed"
    status = 405


class Conflict(DomainError):
    code = "conflict"
    status = 409


class Unprocessable(DomainError):
    """Well-formed input that cannot be used as it is (content its format or schema rejects, a rule
    naming a version that does not exist)."""

    code = "unprocessable"
    status = 422


class Gone(DomainError):
    code = "gone"
    status = 410


class TooLarge(DomainError):
    code = "too_large"
    status = 413


class Locked(DomainError):
    """The resource is locked by someone else; `lock_info` is the holder's Terraform LockInfo."""

    code = "locked"
    status = 423

    def __init__(
        self, message: str, *, lock_info: dict[str, Any] | None = None, status: int = 423, details: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.lock_info = lock_info
        self.status = status
