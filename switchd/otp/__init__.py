"""switchd.otp: Erlang/OTP's process model over trio (the mapping and every difference: docs/otp.md).

Processes and messages: ``Process`` (``Process.start_link``), ``Pid``, ``self_pid``,
``is_process_alive``, ``send``, ``receive``, ``monitor``, ``demonitor``, ``Down``, ``MonitorRef``,
``send_after``, ``cancel_timer``, ``set_inline_handler``, ``TimerRef``, ``ExitReason``.

GenServer: ``GenServer``, ``Reply``, ``NoReply``, ``Stop``, ``Caller``; ``call``, ``cast``,
``reply``, ``stop``.

Supervision: ``Supervisor``, ``DynamicSupervisor``, ``ChildSpec``, ``SupervisorFlags``,
``Restart``, ``ChildType``, ``Strategy``, ``BRUTAL_KILL`` (``BrutalKill``); ``start_child``,
``terminate_child``, ``restart_child``, ``delete_child``, ``which_children``, ``count_children``,
``ChildInfo``, ``ChildCounts``.

StateMachine (gen_statem): ``StateMachine``, ``NextState``, ``KeepState`` (and ``Stop``); event
types ``Event``, ``Call``, ``Enter``, ``EventType`` with ``CAST``, ``INFO``, ``STATE_TIMEOUT``,
``EVENT_TIMEOUT``, ``INTERNAL``; actions ``Action``, ``ReplyAction``, ``Postpone``, ``NextEvent``,
``StateTimeout``, ``EventTimeout``, ``GenericTimeout``.

EventManager (gen_event): ``EventManager``, ``EventHandler``; ``add_handler``, ``delete_handler``,
``notify``, ``sync_notify``, ``call_handler``, ``which_handlers``.

sys: ``get_state``, ``replace_state``, ``suspend``, ``resume``, ``change_code``.

Registry: ``register``, ``whereis``, ``unregister``; duplicate keys ``join``, ``leave``,
``members``, ``dispatch``.

Application: ``Application``, ``run``, ``run_async``.

Load: ``LoopLag`` (how late the event loop runs) and ``LagMonitor`` (``lag_monitor_spec``) that
measures it.

Introspection and reports: ``processes``, ``process_info``, ``ProcessInfo``, ``tree``,
``TreeNode``; ``set_report_handler``, ``Report``, ``ReportKind``, ``ReportHandler`` (logger
``switchd.otp``).

Errors: ``OTPError`` → ``CallTimeout``, ``NoProcess``, ``ServerExited``, ``AlreadyRegistered``,
``MaxChildren``, ``ReceiveTimeout``, ``SupervisorGaveUp``, ``NotABehaviour``.
"""

from ._application import Application, run, run_async
from ._call import Caller, call, cast, reply
from ._child_spec import (
    BRUTAL_KILL,
    BrutalKill,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    Restart,
    Strategy,
    SupervisorFlags,
)
from ._dynamic_supervisor import DynamicSupervisor
from ._errors import (
    AlreadyRegistered,
    CallTimeout,
    MaxChildren,
    NoProcess,
    NotABehaviour,
    OTPError,
    ReceiveTimeout,
    ServerExited,
    SupervisorGaveUp,
)
from ._event_manager import (
    EventHandler,
    EventManager,
    add_handler,
    call_handler,
    delete_handler,
    notify,
    sync_notify,
    which_handlers,
)
from ._gen_server import GenServer, NoReply, Reply, Stop
from ._introspection import ProcessInfo, TreeNode, process_info, processes, tree
from ._lag import LagMonitor, LoopLag, lag_monitor_spec
from ._messages import (
    Process,
    cancel_timer,
    demonitor,
    is_process_alive,
    monitor,
    receive,
    self_pid,
    send,
    send_after,
    set_inline_handler,
)
from ._pid import Down, ExitReason, MonitorRef, Pid, TimerRef
from ._registry import dispatch, join, leave, members, register, unregister, whereis
from ._reports import Report, ReportHandler, ReportKind, set_report_handler
from ._state_machine import StateMachine
from ._statem_types import (
    CAST,
    EVENT_TIMEOUT,
    INFO,
    INTERNAL,
    STATE_TIMEOUT,
    Action,
    Call,
    Enter,
    Event,
    EventTimeout,
    EventType,
    GenericTimeout,
    KeepState,
    NextEvent,
    NextState,
    Postpone,
    ReplyAction,
    StateTimeout,
)
from ._supervisor import (
    Supervisor,
    count_children,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)
from ._sys import change_code, get_state, replace_state, resume, stop, suspend

__all__ = [
    "Action", "AlreadyRegistered", "Application", "BRUTAL_KILL", "BrutalKill", "CAST", "Call",
    "CallTimeout", "Caller", "ChildCounts", "ChildInfo", "ChildSpec", "ChildType", "Down",
    "DynamicSupervisor", "EVENT_TIMEOUT", "Enter", "Event", "EventHandler", "EventManager",
    "EventTimeout", "EventType", "ExitReason", "GenServer", "GenericTimeout", "INFO", "INTERNAL",
    "KeepState", "LagMonitor", "LoopLag", "MaxChildren", "MonitorRef", "NextEvent", "NextState", "NoProcess", "NoReply",
    "NotABehaviour", "OTPError", "Pid", "Postpone", "Process", "ProcessInfo", "ReceiveTimeout",
    "Reply", "ReplyAction", "Report", "ReportHandler", "ReportKind", "Restart", "STATE_TIMEOUT",
    "ServerExited", "StateMachine", "StateTimeout", "Stop", "Strategy", "Supervisor",
    "SupervisorFlags", "SupervisorGaveUp", "TimerRef", "TreeNode", "add_handler", "call",
    "call_handler", "cancel_timer", "cast", "change_code", "count_children", "delete_child",
    "delete_handler", "demonitor", "dispatch", "get_state", "is_process_alive", "join", "lag_monitor_spec", "leave",
    "members", "monitor", "notify", "process_info", "processes", "receive", "register",
    "replace_state", "reply", "restart_child", "resume", "run", "run_async", "self_pid", "send",
    "send_after", "set_inline_handler", "set_report_handler", "start_child", "stop", "suspend", "sync_notify",
    "terminate_child", "tree", "unregister", "whereis", "which_children", "which_handlers",
]
