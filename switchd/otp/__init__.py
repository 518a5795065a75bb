"""switchd.otp: Erlang/OTP's process model over trio (see docs/otp.md).

Processes and messages: Process, Pid, self_pid, send, receive, monitor, demonitor, Down,
MonitorRef, send_after, cancel_timer, TimerRef, ExitReason. Behaviours: GenServer (call, cast,
reply, stop; Reply, NoReply, Stop, Caller), Supervisor and DynamicSupervisor (ChildSpec,
SupervisorFlags, Restart, ChildType, Strategy, BRUTAL_KILL; start_child, terminate_child,
restart_child, delete_child, which_children, count_children, ChildInfo, ChildCounts). sys
operations: get_state, replace_state, suspend, resume, change_code. Registry: register, whereis,
unregister; join, leave, members, dispatch. Reports: Report, ReportKind, set_report_handler.
Errors: OTPError and its subclasses (see ``_errors``).
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
)
from ._pid import Down, ExitReason, MonitorRef, Pid, TimerRef
from ._registry import dispatch, join, leave, members, register, unregister, whereis
from ._reports import Report, ReportHandler, ReportKind, set_report_handler
from ._state_machine import (
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
    StateMachine,
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

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "Action", "AlreadyRegistered", "Application", "BRUTAL_KILL", "BrutalKill", "CAST", "Call",
    "CallTimeout", "Caller", "ChildCounts", "ChildInfo", "ChildSpec", "ChildType", "Down",
    "DynamicSupervisor", "EVENT_TIMEOUT", "Enter", "Event", "EventHandler", "EventManager",
    "EventTimeout", "EventType", "ExitReason", "GenServer", "GenericTimeout", "INFO", "INTERNAL",
    "KeepState", "MaxChildren", "MonitorRef", "NextEvent", "NextState", "NoProcess", "NoReply",
    "NotABehaviour", "OTPError", "Pid", "Postpone", "Process", "ProcessInfo", "ReceiveTimeout",
    "Reply", "ReplyAction", "Report", "ReportHandler", "ReportKind", "Restart", "STATE_TIMEOUT",
    "ServerExited", "StateMachine", "StateTimeout", "Stop", "Strategy", "Supervisor",
    "SupervisorFlags", "SupervisorGaveUp", "TimerRef", "TreeNode", "add_handler", "call",
    "call_handler", "cancel_timer", "cast", "change_code", "count_children", "delete_child",
    "delete_handler", "demonitor", "dispatch", "get_state", "is_process_alive", "join", "leave",
    "members", "monitor", "notify", "process_info", "processes", "receive", "register",
    "replace_state", "reply", "restart_child", "resume", "run", "run_async", "self_pid", "send",
    "send_after", "set_report_handler", "start_child", "stop", "suspend", "sync_notify",
    "terminate_child", "tree", "unregister", "whereis", "which_children", "which_handlers",
]
