"""Errors raised by switchd.sim.

* SimError                  base of every error this package raises on purpose
  * BehaviourError          a behaviour spec or behaviours file is malformed (names the spec and key)
  * AddressError            a ``host:port`` address, or a number to call, is not valid
  * SimTransportError       a TCP connection could not be opened, listened on, or was lost
"""

from __future__ import annotations


class SimError(Exception):
    """Base class of every error switchd.sim raises on purpose."""


class BehaviourError(SimError):
    """A behaviour spec (``reject:code=503``) or a behaviours file is malformed."""


class AddressError(SimError):
    """An address is not ``host:port`` with a port in 0-65535, or a number cannot be a SIP user."""


class SimTransportError(SimError):
    """The TCP transport failed: connect refused, cannot listen, or the connection was lost."""
