"""switchd.api: the HTTP management and billing API on h11, Prometheus metrics and the SIP trace.

`api_spec(settings, view)` is the supervised child the application adds last to its tree; the
endpoints, limits and answers are in docs/api.md. `api_listening_on()` says where it listens.
The pieces it is built from — `TraceBuffer`/`TraceHandler`, `CallStats`/`MetricsHandler`,
`NodeMetrics`, `HttpConnection` — are public for the tests and for embedding.
"""

from ._errors import (
    ApiError,
    BadRequest,
    ChaosKill,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
from ._handlers import HandlerSpec, keep_handlers, wait_for_name
from ._http import HttpConnection
from ._metrics import CONTENT_TYPE, CallStats, MetricsHandler, NodeMetrics, Scrape
from ._server import HttpListener, api_listening_on, api_spec, endpoints
from ._settings import ApiSettings, NodeView, ReloadOutcome, is_loopback
from ._state import ApiState, Database
from ._trace import MAX_TEXT, Follower, TraceBuffer, TracedMessage, TraceHandler, TraceSetup

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "ApiError", "ApiSettings", "ApiState", "BadRequest", "CONTENT_TYPE", "CallStats", "ChaosKill", "Database",
    "Follower", "Forbidden", "HandlerSpec", "HttpConnection", "HttpListener", "MAX_TEXT", "MethodNotAllowed",
    "MetricsHandler", "NodeMetrics", "NodeView", "NotFound", "ReloadOutcome", "Scrape", "TraceBuffer",
    "TraceHandler", "TraceSetup", "TracedMessage", "Unauthorized", "Unavailable", "Unprocessable",
    "api_listening_on", "api_spec", "endpoints", "is_loopback", "keep_handlers", "wait_for_name",
]
