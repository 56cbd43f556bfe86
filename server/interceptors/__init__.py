"""Server interceptors, one concern per module, chained outermost first by the app."""

from switchboard.server.interceptors.auth import AuthInterceptor
from switchboard.server.interceptors.errors import ErrorsInterceptor, status_of
from switchboard.server.interceptors.metrics import MetricsInterceptor
from switchboard.server.interceptors.tracing import TracingInterceptor

__all__ = [
    "AuthInterceptor",
    "ErrorsInterceptor",
    "MetricsInterceptor",
    "TracingInterceptor",
    "status_of",
]
