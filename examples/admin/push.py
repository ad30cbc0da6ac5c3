#!/usr/bin/env python3
"""Mints a client token for a user, then pushes a message to that user (docs/admin-api.md).

Python 3.8+, standard library only.

  python3 push.py              WXGATE_URL (default http://127.0.0.1:3000), WXGATE_KEY_ID,
                               WXGATE_KEY_SECRET (default local mode's key), WXGATE_USER (default demo-user)
  python3 push.py --selftest   prints the signature of the documented worked example

Prints each answer as `METHOD PATH -> STATUS BODY`; exits 1 on a non-2xx answer.
"""
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def sign(secret: str, method: str, path: str, query: str, timestamp: int, nonce: str, body: bytes) -> str:
    """hex(HMAC_SHA256(secret, METHOD\\nPATH\\nQUERY\\nTIMESTAMP\\nNONCE\\nhex(SHA256(body))))"""
    body_hash = hashlib.sha256(body).hexdigest()
    string_to_sign = "\n".join([method, path, query, str(timestamp), nonce, body_hash])
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


if sys.argv[1:] == ["--selftest"]:
    print(sign("local-dev-admin-secret", "POST", "/v1/push", "a=1", 1700000000, "abcdefabcdefabcdef", b'{"x":1}'))
    sys.exit(0)

BASE_URL = (os.environ.get("WXGATE_URL") or "http://127.0.0.1:3000").rstrip("/")
KEY_ID = os.environ.get("WXGATE_KEY_ID") or "local"
SECRET = os.environ.get("WXGATE_KEY_SECRET") or "local-dev-admin-secret"
USER = os.environ.get("WXGATE_USER") or "demo-user"


def call(method: str, path_with_query: str, payload=None):
    url = BASE_URL + path_with_query
    parts = urllib.parse.urlsplit(url)  # urllib sends the path and query as written
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()  # sign exactly the bytes sent
    timestamp = int(time.time())
    nonce = secrets.token_hex(16)
    headers = {
        "X-Wxgate-Key": KEY_ID,
        "X-Wxgate-Timestamp": str(timestamp),
        "X-Wxgate-Nonce": nonce,
        "X-Wxgate-Signature": sign(SECRET, method, parts.path, parts.query, timestamp, nonce, body),
    }
    if body:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:  # a non-2xx answer
        status, text = error.code, error.read().decode()
    print(f"{method} {path_with_query} -> {status} {text}", flush=True)
    if not 200 <= status < 300:
        sys.exit(1)
    return json.loads(text)


token = call("POST", "/v1/tokens", {"userId": USER})["token"]
# A client connects with it: wss://<WebSocket API>/?token=<token>
call("POST", "/v1/push", {"to": {"users": [USER]}, "body": {"text": "hello from python"}})
