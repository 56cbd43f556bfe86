"""Server interceptors, one concern per module, chained outermost first by the app."""

from switchboard.server.interceptors.errors import ErrorsInterceptor, status_of

__all__ = ["ErrorsInterceptor", "status_of"]
