"""The minimal SDP (RFC 4566) a simulated phone offers or answers with: one PCMU audio stream.

The simulator carries no media; the body is there so B2BUAs and SIPp see a normal offer/answer.
"""

from __future__ import annotations

CONTENT_TYPE = ("Content-Type", "application/sdp")


def audio_sdp(host: str, rtp_port: int = 40_000, *, session: int = 1) -> bytes:
    """An SDP body announcing PCMU audio at `host`:`rtp_port`."""
    family = "IP6" if ":" in host else "IP4"
    return (
        "v=0\r\n"
        f"o=switchd-sim {session} 1 IN {family} {host}\r\n"
        "s=switchd sim\r\n"
        f"c=IN {family} {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
    ).encode()
