"""Whatever JSON the API answers, the renderers draw something and raise nothing; addresses parse or refuse."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from switchd.cli import CliError
from switchd.cli._calls import call_view, calls_table
from switchd.cli._client import ApiClient, api_address
from switchd.cli._routing import routes_table
from switchd.cli._status import status_view, top_frame
from switchd.cli._trace import Ladder, Message
from switchd.cli._views import children

from ._samples import CALLS, STATUS, TRACE, TREE

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _mangled(sample: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """`sample` with some of its fields (at any depth) replaced by arbitrary JSON."""

    def mangle(value: Any) -> st.SearchStrategy[Any]:
        if isinstance(value, dict):
            return st.fixed_dictionaries({k: st.one_of(mangle(v), json_values) for k, v in value.items()})
        if isinstance(value, list):
            return st.lists(st.one_of(*(mangle(v) for v in value)) if value else json_values, max_size=4)
        return st.one_of(st.just(value), json_values)

    return mangle(sample)


def _render(*renderables: Any) -> str:
    out = io.StringIO()
    console = Console(file=out, width=100)
    for renderable in renderables:
        console.print(renderable)
    return out.getvalue()


@settings(max_examples=100, deadline=None)
@given(_mangled(STATUS), _mangled(TREE), _mangled(CALLS))
def test_status_and_top_draw_any_answer(status: dict[str, Any], tree: dict[str, Any], calls: dict[str, Any]) -> None:
    _render(status_view(status, tree, api="http://h:1"), top_frame(status, tree, calls, api="http://h:1"))


@settings(max_examples=100, deadline=None)
@given(_mangled(CALLS["calls"][0]), _mangled(CALLS), _mangled({"routes": [{"gateways": [{}]}]}))
def test_calls_and_routes_draw_any_answer(call: dict[str, Any], calls: dict[str, Any], routes: dict[str, Any]) -> None:
    _render(call_view({**call, "legs": [call, 1]}), calls_table(children(calls, "calls")), routes_table(routes))


@settings(max_examples=100, deadline=None)
@given(_mangled(TRACE))
def test_the_ladder_draws_any_trace(trace: dict[str, Any]) -> None:
    console = Console(file=io.StringIO(), width=100)
    ladder = Ladder(console, full=True, calls=True)
    messages = [Message.read(m) for m in children(trace, "messages")]
    ladder.header("x", messages)
    for message in messages:
        ladder.print(message)


@given(st.text(max_size=40))
def test_an_api_address_parses_or_is_refused_as_a_bad_argument(text: str) -> None:
    try:
        address = api_address(text)
    except CliError as exc:
        assert exc.code == 2
    else:
        assert 1 <= address.port <= 65_535 and api_address(ApiClient(address).url) == address
