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

    phrase: str

    def __new__(cls, value: int, phrase: str) -> Status:
        member = int.__new__(cls, value)
        member._value_ = value
        member.phrase = phrase
        return member

    TRYING = 100, "Trying"
    RINGING = 180, "Ringing"
    CALL_IS_BEING_FORWARDED = 181, "Call Is Being Forwarded"
    QUEUED = 182, "Queued"
    SESSION_PROGRESS = 183, "Session Progress"
    OK = 200, "OK"
    ACCEPTED = 202, "Accepted"
    MULTIPLE_CHOICES = 300, "Multiple Choices"
    MOVED_PERMANENTLY = 301, "Moved Permanently"
    MOVED_TEMPORARILY = 302, "Moved Temporarily"
    USE_PROXY = 305, "Use Proxy"
    ALTERNATIVE_SERVICE = 380, "Alternative Service"
    BAD_REQUEST = 400, "Bad Request"
    UNAUTHORIZED = 401, "Unauthorized"
    PAYMENT_REQUIRED = 402, "Payment Required"
    FORBIDDEN = 403, "Forbidden"
    NOT_FOUND = 404, "Not Found"
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed"
    NOT_ACCEPTABLE = 406, "Not Acceptable"
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required"
    REQUEST_TIMEOUT = 408, "Request Timeout"
    GONE = 410, "Gone"
    REQUEST_ENTITY_TOO_LARGE = 413, "Request Entity Too Large"
    REQUEST_URI_TOO_LONG = 414, "Request-URI Too Long"
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type"
    UNSUPPORTED_URI_SCHEME = 416, "Unsupported URI Scheme"
    BAD_EXTENSION = 420, "Bad Extension"
    EXTENSION_REQUIRED = 421, "Extension Required"
    INTERVAL_TOO_BRIEF = 423, "Interval Too Brief"
    TEMPORARILY_UNAVAILABLE = 480, "Temporarily Unavailable"
    CALL_OR_TRANSACTION_DOES_NOT_EXIST = 481, "Call/Transaction Does Not Exist"
    LOOP_DETECTED = 482, "Loop Detected"
    TOO_MANY_HOPS = 483, "Too Many Hops"
    ADDRESS_INCOMPLETE = 484, "Address Incomplete"
    AMBIGUOUS = 485, "Ambiguous"
    BUSY_HERE = 486, "Busy Here"
    REQUEST_TERMINATED = 487, "Request Terminated"
    NOT_ACCEPTABLE_HERE = 488, "Not Acceptable Here"
    REQUEST_PENDING = 491, "Request Pending"
    UNDECIPHERABLE = 493, "Undecipherable"
    SERVER_INTERNAL_ERROR = 500, "Server Internal Error"
    NOT_IMPLEMENTED = 501, "Not Implemented"
    BAD_GATEWAY = 502, "Bad Gateway"
    SERVICE_UNAVAILABLE = 503, "Service Unavailable"
    SERVER_TIMEOUT = 504, "Server Time-out"
    VERSION_NOT_SUPPORTED = 505, "Version Not Supported"
    MESSAGE_TOO_LARGE = 513, "Message Too Large"
    BUSY_EVERYWHERE = 600, "Busy Everywhere"
    DECLINE = 603, "Decline"
    DOES_NOT_EXIST_ANYWHERE = 604, "Does Not Exist Anywhere"
    NOT_ACCEPTABLE_ANYWHERE = 606, "Not Acceptable"


codes = Status
"""h11-style alias: ``codes.BUSY_HERE``."""

# Method lookup without the cost of Enum.__call__ on the parser's hot path.
KNOWN_METHODS: dict[str, Method] = {m.value: m for m in Method}


def method_of(token: str) -> Method | str:
    """`token` as a `Method` member when it names one, else the token itself."""
    return KNOWN_METHODS.get(token, token)


def phrase_for(status: int) -> str:
    """The default reason phrase for `status`; a class-generic phrase for unknown codes."""
    known = _BY_CODE.get(status)
    if known is not None:
        return known.phrase
    return _CLASS_PHRASES.get(status // 100, "Unknown")


_BY_CODE: dict[int, Status] = {s.value: s for s in Status}
_CLASS_PHRASES = {1: "Trying", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error",
                  6: "Global Failure"}
