"""The malformed corpus through `switchd.sip.Connection`: refused where the manifest says the parser
refuses, framing kept unless it says the connection closes, and anything handed out is clean.

(tests/switch runs the same corpus through a connection process and the dispatcher,
tests/integration against a live daemon.)
"""

from __future__ import annotations

import pytest

from switchd.sip import Connection, RemoteProtocolError, Request
from tests.sip._edge import assert_storable
from tests.sip.malformed_corpus import CASES, Case, sent


def test_the_corpus_covers_every_class_of_input_the_edge_checks() -> None:
    assert {case.kind for case in CASES} == {"encoding", "control", "scheme", "option-tag", "grammar", "invite",
                                              "framing"}
    assert len({case.file for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_case_is_refused_by_the_parser_or_handed_out_clean(case: Case) -> None:
    connection = Connection()
    connection.receive_data(sent(case))
    if case.refused_by == "parser":
        with pytest.raises(RemoteProtocolError) as caught:
            connection.next_event()
        error = caught.value
        assert error.framing_lost is case.closes, str(error)
        assert error.status_hint == (case.answer or 400), str(error)
        if case.reason is not None:
            assert error.reason == case.reason, str(error)
    else:
        message = connection.next_event()
        assert isinstance(message, Request), message
        assert_storable(message)
    if not case.closes:
        follow = connection.next_event()
        assert isinstance(follow, Request) and follow.call_id == f"after-{case.name}"
