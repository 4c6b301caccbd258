"""fluxkit's pure core: no sockets, no clocks, no environment. Drivers do the I/O."""

from fluxkit._core._flow import Flow, Step, accept, send, wait
from fluxkit._core._polling import PollSchedule
from fluxkit._core._retry import RetryPolicy, parse_retry_after
from fluxkit._core._wire import Accepted, HttpRequest, HttpResponse, RetryMode, Wait

__all__ = [
    "Accepted",
    "Flow",
    "HttpRequest",
    "HttpResponse",
    "PollSchedule",
    "RetryMode",
    "RetryPolicy",
    "Step",
    "Wait",
    "accept",
    "parse_retry_after",
    "send",
    "wait",
]
