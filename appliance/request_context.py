"""Who asked for the work in progress: the request id, user and project of the API call.

The API sets it once per request (after authentication); domain code that records what a
request caused (instance actions, audit) reads it without the HTTP layer being passed down.
A context variable follows the request into the tasks it starts (asyncio copies the context
when a task is created), so background work still names the request that caused it.
"""
from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestInfo:
    request_id: str
    user_id: str = ""
    project_id: str | None = None
    source: str = ""


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "monostack_request", default=None)


def set_current(info: RequestInfo) -> contextvars.Token:
    return _current.set(info)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


def peek() -> RequestInfo | None:
    """The request being served, if any (without making one up)."""
    return _current.get()


def current() -> RequestInfo:
    """The request being served, or a fresh id for work no request caused (start-up, timers)."""
    return _current.get() or RequestInfo(request_id="req-" + str(uuid.uuid4()))
