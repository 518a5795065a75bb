"""switchd.sim: simulated phones and gateways (UAS) and callers (UAC) over SIP/TCP.

Built on switchd.sip (messages, transactions, dialogs) and switchd.otp (every connection and every
call is a process; the simulator is a supervision tree). Used by ``switchd sim``, ``switchd call``,
``switchd load`` and the tests. See docs/sim.md.
"""

from ._address import HostPort, check_user, format_address, parse_address
from ._behaviour import (
    Answer,
    Behaviour,
    Behaviours,
    Busy,
    Drop,
    NeverAnswer,
    Reject,
    behaviour_spec,
    load_behaviours,
    parse_behaviour,
    parse_route,
)
from ._errors import AddressError, BehaviourError, SimError, SimTransportError
from ._gateway import SimGateway, start_sim
from ._load import LoadReport, expand_number, outcome_key, percentile, run_load
from ._uac import CallOptions, CallResult, LadderEntry, Outcome, UacConnection, open_uac, place_call, uac_over

__all__ = [  # sorted; tests/test_exports.py checks it
    "AddressError", "Answer", "Behaviour", "BehaviourError", "Behaviours", "Busy", "CallOptions",
    "CallResult", "Drop", "HostPort", "LadderEntry", "LoadReport", "NeverAnswer", "Outcome", "Reject",
    "SimError", "SimGateway", "SimTransportError", "UacConnection", "behaviour_spec", "check_user", "expand_number",
    "format_address", "load_behaviours", "open_uac", "outcome_key", "parse_address", "parse_behaviour",
    "parse_route",
    "percentile", "place_call", "run_load", "start_sim", "uac_over",
]
