"""Supervisor and event-manager reports: logged on ``switchd.otp`` and handed to an optional callback.

Every report is one log record with structured ``extra`` fields (``report``, ``supervisor``,
``child``, ``pid``, ``reason``, ``restarts``) and one ``Report`` passed to the handler set with
``set_report_handler`` (per trio run; later used for metrics). A crash is reported once, by the
supervisor (or event manager) that handles it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ._pid import ExitReason, Pid
from ._process import node

log = logging.getLogger("switchd.otp")


class ReportKind(StrEnum):
    """What a report is about."""

    CRASH = "crash"                      # a supervised child exited abnormally
    RESTART = "restart"                  # a supervisor restarted a child
    GAVE_UP = "gave_up"                  # a supervisor exceeded its restart intensity
    START_FAILED = "start_failed"        # a child's start (init) failed
    HANDLER_REMOVED = "handler_removed"  # an event handler raised and was removed


@dataclass(frozen=True, slots=True)
class Report:
    """One report: `supervisor` is the reporting process (name or pid), `child` the child id."""

    kind: ReportKind
    supervisor: str
    child: str | None
    pid: Pid | None
    reason: ExitReason | None
    restarts: int = 0


ReportHandler = Callable[[Report], None]


def set_report_handler(handler: ReportHandler | None) -> ReportHandler | None:
    """Have `handler` called with every Report of this trio run (None removes it); returns the old one.

    The handler runs synchronously in the reporting process: keep it quick, never block. An
    exception it raises is logged and otherwise ignored.
    """
    n = node()
    old, n.report_handler = n.report_handler, handler
    return old


_LEVELS = {
    ReportKind.CRASH: logging.ERROR,
    ReportKind.RESTART: logging.INFO,
    ReportKind.GAVE_UP: logging.ERROR,
    ReportKind.START_FAILED: logging.ERROR,
    ReportKind.HANDLER_REMOVED: logging.ERROR,
}


_WITH_TRACEBACK = frozenset({ReportKind.CRASH, ReportKind.START_FAILED, ReportKind.HANDLER_REMOVED})


def emit(report: Report, message: str, *args: object) -> None:
    """Log `report` on ``switchd.otp`` (with a traceback when the reason is an exception) and hand it on."""
    exc_info = report.reason if isinstance(report.reason, BaseException) else None
    log.log(
        _LEVELS[report.kind], message, *args,
        exc_info=exc_info if report.kind in _WITH_TRACEBACK else None,
        extra={
            "report": str(report.kind), "supervisor": report.supervisor, "child": report.child,
            "pid": str(report.pid) if report.pid is not None else None,
            "reason": repr(report.reason), "restarts": report.restarts,
        },
    )
    handler = node().report_handler
    if handler is not None:
        try:
            handler(report)
        except Exception:
            log.exception("report handler %r failed on a %s report", handler, report.kind)
