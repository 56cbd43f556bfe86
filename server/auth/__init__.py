"""Who is calling: verified identities and what they may do."""

from switchboard.server.auth.exposure import check_exposure
from switchboard.server.auth.identity import Caller, current_caller
from switchboard.server.auth.tls import server_credentials
from switchboard.server.auth.verifier import TokenVerifier

__all__ = ["Caller", "TokenVerifier", "check_exposure", "current_caller", "server_credentials"]
