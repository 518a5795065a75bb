"""SIP method names and status codes, spelled as RFC 3261 (and its extensions) spell them."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["Method", "Status", "codes"]


class Method(StrEnum):
    """The SIP methods this package knows by name.

    Methods are case-sensitive tokens (RFC 3261 §7.1). A request with any other valid token is
    still parsed: its `Request.method` is then a plain ``str``.
    """

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    INFO = "INFO"  # RFC 6086
    UPDATE = "UPDATE"  # RFC 3311
    PRACK = "PRACK"  # RFC 3262
    SUBSCRIBE = "SUBSCRIBE"  # RFC 6665
    NOTIFY = "NOTIFY"  # RFC 6665
    REFER = "REFER"  # RFC 3515
    MESSAGE = "MESSAGE"  # RFC 3428
    PUBLISH = "PUBLISH"  # RFC 3903


class Status(IntEnum):
    """SIP status codes (RFC 3261 §21 and extensions); `.phrase` is the default reason phrase."""

    TRYING = 100
    RINGING = 180
    CALL_IS_BEING_FORWARDED = 181
    QUEUED = 182
    SESSION_PROGRESS = 183
    OK = 200
    ACCEPTED = 202
    MULTIPLE_CHOICES = 300
    MOVED_PERMANENTLY = 301
    MOVED_TEMPORARILY = 302
    USE_PROXY = 305
    ALTERNATIVE_SERVICE = 380
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    PAYMENT_REQUIRED = 402
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    PROXY_AUTHENTICATION_REQUIRED = 407
    REQUEST_TIMEOUT = 408
    GONE = 410
    REQUEST_ENTITY_TOO_LARGE = 413
    REQUEST_URI_TOO_LONG = 414
    UNSUPPORTED_MEDIA_TYPE = 415
    UNSUPPORTED_URI_SCHEME = 416
    BAD_EXTENSION = 420
    EXTENSION_REQUIRED = 421
    INTERVAL_TOO_BRIEF = 423
    TEMPORARILY_UNAVAILABLE = 480
    CALL_OR_TRANSACTION_DOES_NOT_EXIST = 481
    LOOP_DETECTED = 482
    TOO_MANY_HOPS = 483
    ADDRESS_INCOMPLETE = 484
    AMBIGUOUS = 485
    BUSY_HERE = 486
    REQUEST_TERMINATED = 487
    NOT_ACCEPTABLE_HERE = 488
    REQUEST_PENDING = 491
    UNDECIPHERABLE = 493
    SERVER_INTERNAL_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    SERVER_TIMEOUT = 504
    VERSION_NOT_SUPPORTED = 505
    MESSAGE_TOO_LARGE = 513
    BUSY_EVERYWHERE = 600
    DECLINE = 603
    DOES_NOT_EXIST_ANYWHERE = 604
    NOT_ACCEPTABLE_ANYWHERE = 606

    @property
    def phrase(self) -> str:
        """The reason phrase RFC 3261 gives this code (``Status.BUSY_HERE.phrase == "Busy Here"``)."""
        return _PHRASES[self.value]


_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


codes = Status
"""h11-style alias: ``codes.BUSY_HERE``."""

# Method lookup without the cost of Enum.__call__ on the parser's hot path.
KNOWN_METHODS: dict[str, Method] = {m.value: m for m in Method}


def method_of(token: str) -> Method | str:
    """`token` as a `Method` member when it names one, else the token itself."""
    return KNOWN_METHODS.get(token, token)


def phrase_for(status: int) -> str:
    """The default reason phrase for `status`; a class-generic phrase for unknown codes."""
    known = _PHRASES.get(status)
    if known is not None:
        return known
    return _CLASS_PHRASES.get(status // 100, "Unknown")


_CLASS_PHRASES = {1: "Trying", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error",
                  6: "Global Failure"}
