#!/usr/bin/env python3
"""Interop check of certbound's HTTPS side with implementations we did not
write: Python's ssl/urllib as the OAuth client, PyJWT to verify the RFC 9068
JWT against /.well-known/jwks.json, `cryptography` for the certificate
thumbprint, and python-cwt + zlib for the status list.

usage: oauth_client.py BASE_URL CA_PEM ISSUER AUDIENCE CLIENT_ID CLIENT_SECRET
                       MTLS_CERT_PEM MTLS_KEY_PEM
1. client_secret_basic: gets a JWT; PyJWT verifies signature, typ, iss, aud,
   exp; a tampered copy is refused.
2. tls_client_auth: a TLS client certificate gets a JWT whose cnf.x5t#S256 is
   the base64url SHA-256 of that certificate's DER.
3. the JWT's status-list entry is VALID; after POST /oauth/revoke it is
   INVALID in the list (verified with python-cwt, inflated with zlib), and
   introspection says inactive.
Prints one JSON line; exits non-zero on any failure.
"""
import base64
import hashlib
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import cwt
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def context(ca, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def request(url, ctx, data=None, headers=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def basic(client_id, secret):
    q = urllib.parse.quote_plus
    raw = f"{q(client_id)}:{q(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> int:
    base, ca, issuer, audience, client_id, secret, cert_pem, key_pem = sys.argv[1:9]
    plain = context(ca)
    out = {}

    status, body, _ = request(base + "/.well-known/jwks.json", plain)
    assert status == 200, status
    jwks = jwt.PyJWKSet.from_dict(json.loads(body))

    def verify(token):
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "at+jwt", header
        assert header["alg"] == "ES256", header
        key = next(k for k in jwks.keys if k.key_id == header["kid"])
        return jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )

    # 1. client_secret_basic
    form = {"grant_type": "client_credentials", "audience": audience}
    status, body, headers = request(base + "/oauth/token", plain, form, basic(client_id, secret))
    assert status == 200, (status, body)
    grant = json.loads(body)
    assert grant["token_type"] == "Bearer", grant
    claims = verify(grant["access_token"])
    assert claims["client_id"] == client_id, claims
    assert claims["sub"] == client_id, claims
    assert "cnf" not in claims, claims
    out["secret_jwt_claims"] = sorted(claims)
    tampered = grant["access_token"][:-4] + ("AAAA" if not grant["access_token"].endswith("AAAA") else "BBBB")
    try:
        verify(tampered)
        raise AssertionError("PyJWT accepted a tampered token")
    except jwt.InvalidSignatureError:
        out["tampered_refused"] = True
    # A wrong secret: RFC 6749 invalid_client, 401.
    status, body, _ = request(base + "/oauth/token", plain, form, basic(client_id, secret + "x"))
    assert status == 401 and json.loads(body)["error"] == "invalid_client", (status, body)

    # 2. tls_client_auth
    mtls = context(ca, cert_pem, key_pem)
    status, body, _ = request(base + "/oauth/token", mtls, form)
    assert status == 200, (status, body)
    bound = json.loads(body)["access_token"]
    bclaims = verify(bound)
    with open(cert_pem, "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)
    expected = b64url(hashlib.sha256(der).digest())
    assert bclaims["cnf"]["x5t#S256"] == expected, (bclaims["cnf"], expected)
    out["x5t#S256"] = expected
    out["mtls_client_id"] = bclaims["client_id"]
    out["bound_jwt"] = bound

    # 3. status list: valid, revoke, invalid
    ref = claims["status"]["status_list"]
    cose_keys = [cwt.COSEKey.from_jwk(k) for k in json.loads(request(base + "/.well-known/jwks.json", plain)[1])["keys"]]

    def list_status(uri, idx):
        assert uri.startswith(base), uri
        status, body, headers = request(uri, plain, headers={"Accept": "application/statuslist+cwt"})
        assert status == 200, status
        assert headers.get("Content-Type") == "application/statuslist+cwt", headers
        decoded = cwt.decode(body, cose_keys, no_verify=False)
        assert decoded[2] == uri, decoded[2]
        lst = decoded[65533]
        bits = lst["bits"]
        raw = zlib.decompress(lst["lst"])
        bit = idx * bits
        return (raw[bit // 8] >> (bit % 8)) & ((1 << bits) - 1)

    assert list_status(ref["uri"], ref["idx"]) == 0
    status, body, _ = request(base + "/oauth/revoke", plain, {"token": grant["access_token"]}, basic(client_id, secret))
    assert status == 200, (status, body)
    status, body, _ = request(base + "/oauth/introspect", plain, {"token": grant["access_token"]}, basic(client_id, secret))
    assert status == 200 and json.loads(body) == {"active": False}, body
    deadline = time.time() + 5
    while True:
        value = list_status(ref["uri"], ref["idx"])
        if value == 1:
            break
        assert time.time() < deadline, f"status still {value}"
        time.sleep(0.2)
    out["revoked_status"] = value
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
