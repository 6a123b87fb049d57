"""Test environment for the tlsgate integration suite: ports, certificates, origins, clients and
the gateway process (modelled on curl's tests/http/testenv)."""
from .env import (BIN, REPO, DeadPort, SANITIZED, SCALE, STRICT, can_connect, free_port, fixed_port, need,
                  need_tool, port_is_free, t, wait_until)
from .certs import Certs, KeyPair, fingerprint, make_certs
from .origin import Origin, chunked_body, pattern_bytes, pattern_sha256
from .client import Conn, Hang, Response, SClient, curl, get, refused, s_client, tls_context
from .scripted import ScriptedOrigin, split_at
from .gateway import Gateway, GatewayError, check_sanitizer, tlsgate

__all__ = [
    "BIN", "REPO", "DeadPort", "SANITIZED", "SCALE", "STRICT", "fixed_port", "need", "need_tool", "can_connect", "free_port", "port_is_free", "t",
    "wait_until", "Certs", "KeyPair", "fingerprint", "make_certs", "Origin", "chunked_body",
    "pattern_bytes", "pattern_sha256", "Conn", "Hang", "refused", "Response", "SClient", "curl", "get", "s_client",
    "tls_context", "ScriptedOrigin", "split_at", "Gateway", "GatewayError", "check_sanitizer", "tlsgate",
]
from .pebble import Pebble
