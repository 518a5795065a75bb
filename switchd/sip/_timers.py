"""The transaction timers of RFC 3261 §17 for a reliable transport (TCP), with their defaults.

Only T1, T2 and T4 are set; every other timer derives from them as RFC 3261 Table 4 says. On a
reliable transport the retransmission timers (A, E, G) never run and the "linger" timers that only
absorb network-duplicated messages (D, I, J, K) are zero, so the transactions built on this config
terminate as soon as their exchange is complete.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Timer values in seconds; the derived timers are read-only properties.

    t1: round-trip time estimate (RFC 3261 §17.1.1.1), default 0.5.
    t2: the longest interval between retransmissions of a non-INVITE request or an INVITE
        2xx response, default 4.0.
    t4: the longest time a message stays in the network, default 5.0 (only used by unreliable
        transports; kept so a config file can name it).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"TimerConfig.{name} must be a positive number of seconds, got {value!r}")
        if self.t2 < self.t1:
            raise ValueError(f"TimerConfig.t2 ({self.t2!r}) must not be shorter than t1 ({self.t1!r})")

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """Wait in Completed for response retransmissions (INVITE client): 0 on a reliable transport."""
        return 0.0

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        """INVITE server: wait for the ACK to a non-2xx final response: 64*T1."""
        return 64 * self.t1

    @property
    def timer_i(self) -> float:
        """INVITE server: wait in Confirmed for ACK retransmissions: 0 on a reliable transport."""
        return 0.0

    @property
    def timer_j(self) -> float:
        """Non-INVITE server: wait in Completed for request retransmissions: 0 on a reliable transport."""
        return 0.0

    @property
    def timer_k(self) -> float:
        """Non-INVITE client: wait in Completed for response retransmissions: 0 on a reliable transport."""
        return 0.0

    @property
    def ack_timeout(self) -> float:
        """UAS core: give up retransmitting a 2xx that gets no ACK after 64*T1 (§13.3.1.4)."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()
