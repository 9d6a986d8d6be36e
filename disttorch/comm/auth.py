"""Shared-secret authentication for store requests and data connections.

The launcher exports DISTTORCH_SECRET for every worker of a job. A connection
proves it knows the secret with an HMAC over a fresh nonce; the secret itself
never travels. With no secret set the HMAC key is empty: that still rejects
garbage and foreign protocols, just not a deliberate attacker.
"""
import hashlib
import hmac
import os

SECRET_ENV = "DISTTORCH_SECRET"
MAC_BYTES = 32
NONCE_BYTES = 16


def job_secret():
    return os.environ.get(SECRET_ENV, "").encode()


def new_nonce():
    return os.urandom(NONCE_BYTES)


def sign(secret, purpose, *parts):
    mac = hmac.new(secret, purpose, hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "little"))
        mac.update(part)
    return mac.digest()


def verify(secret, mac, purpose, *parts):
    return isinstance(mac, bytes) and hmac.compare_digest(mac, sign(secret, purpose, *parts))


def credentials(secret, purpose, name, *parts):
    """PLAIN (username, password) proving the secret for one connection: ``name``,
    then a fresh nonce and an HMAC over ``parts``, the name and the nonce."""
    nonce = new_nonce()
    return name.encode(), nonce + sign(secret, purpose, *parts, name.encode(), nonce)


def check_credentials(secret, purpose, username, password, used_nonces, *parts):
    """Whether PLAIN credentials came from ``credentials`` with the same secret and
    parts, and their nonce is new (a recorded handshake cannot be replayed)."""
    nonce, mac = password[:NONCE_BYTES], password[NONCE_BYTES:]
    if nonce in used_nonces or not verify(secret, mac, purpose, *parts, username, nonce):
        return False
    used_nonces.add(nonce)
    return True
