#!/usr/bin/env python3
"""Interop check of certbound's private_key_jwt client authentication
(RFC 7523) with implementations we did not write: PyJWT builds and signs the
client assertions, `cryptography` makes the keys, Authlib's OAuth2Session
(with requests) runs the whole client-credentials flow.

usage: private_key_jwt.py keygen DIR
         writes ec.pem, rsa.pem, wrong.pem (private keys, PKCS#8) and
         ec.jwks.json, rsa.jwks.json (their public JWK Sets, made by PyJWT)
       private_key_jwt.py run BASE_URL CA_PEM ISSUER AUDIENCE DIR EC_CLIENT RSA_CLIENT
                              SECRET_CLIENT SECRET
Prints one JSON line of results; exits non-zero on any failure.
"""
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def jwks(public_key, algorithm, kid):
    jwk = json.loads(algorithm.to_jwk(public_key))
    jwk["kid"] = kid
    jwk["use"] = "sig"
    return {"keys": [jwk]}


def keygen(out):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = ec.generate_private_key(ec.SECP256R1())
    for name, key in [("ec", ec_key), ("rsa", rsa_key), ("wrong", wrong)]:
        with open(os.path.join(out, f"{name}.pem"), "wb") as f:
            f.write(pem(key))
    with open(os.path.join(out, "ec.jwks.json"), "w") as f:
        json.dump(jwks(ec_key.public_key(), jwt.algorithms.ECAlgorithm, "ec1"), f)
    with open(os.path.join(out, "rsa.jwks.json"), "w") as f:
        json.dump(jwks(rsa_key.public_key(), jwt.algorithms.RSAAlgorithm, "rsa1"), f)


def post_token(base, ctx, form, basic=None):
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(base + "/oauth/token", data=data, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if basic:
        import base64

        req.add_header("Authorization", "Basic " + base64.b64encode(basic.encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run(base, ca, issuer, audience, d, ec_client, rsa_client, secret_client, secret):
    ctx = ssl.create_default_context(cafile=ca)
    token_url = base + "/oauth/token"
    ec_pem = open(os.path.join(d, "ec.pem"), "rb").read()
    rsa_pem = open(os.path.join(d, "rsa.pem"), "rb").read()
    wrong_pem = open(os.path.join(d, "wrong.pem"), "rb").read()
    results = {}
    failures = []

    def assertion(client, key=ec_pem, alg="ES256", kid="ec1", **over):
        now = int(time.time())
        claims = {"iss": client, "sub": client, "aud": token_url, "iat": now,
                  "exp": now + 60, "jti": str(uuid.uuid4())}
        claims.update(over)
        headers = {"kid": kid} if kid else None
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def form(a):
        return {"grant_type": "client_credentials", "audience": audience,
                "client_assertion_type": JWT_BEARER, "client_assertion": a}

    def expect(name, status, body, want_status, want_error=None):
        results[name] = [status, body.get("error")]
        if status != want_status or (want_error and body.get("error") != want_error):
            failures.append(f"{name}: {status} {body}")

    # 1. PyJWT ES256 assertion: a token; 2. the same assertion again: refused.
    a = assertion(ec_client)
    status, body = post_token(base, ctx, form(a))
    expect("pyjwt_es256", status, body, 200)
    if status == 200 and not body.get("access_token"):
        failures.append("pyjwt_es256: no access_token")
    status, body = post_token(base, ctx, form(a))
    expect("replayed", status, body, 401, "invalid_client")
    # The issuer identifier as aud works too (RFC 7523 §3).
    status, body = post_token(base, ctx, form(assertion(ec_client, aud=issuer)))
    expect("aud_issuer", status, body, 200)
    # Refusals.
    status, body = post_token(base, ctx, form(assertion(ec_client, aud="https://elsewhere.example/token")))
    expect("wrong_aud", status, body, 401, "invalid_client")
    now = int(time.time())
    status, body = post_token(base, ctx, form(assertion(ec_client, iat=now - 600, exp=now - 300)))
    expect("expired", status, body, 401, "invalid_client")
    status, body = post_token(base, ctx, form(assertion(ec_client, exp=now + 3600)))
    expect("too_long_lived", status, body, 401, "invalid_client")
    status, body = post_token(base, ctx, form(assertion(ec_client, key=wrong_pem)))
    expect("wrong_key", status, body, 401, "invalid_client")
    status, body = post_token(base, ctx, form(assertion(ec_client, key=None, alg="none", kid=None)))
    expect("alg_none", status, body, 401, "invalid_client")
    status, body = post_token(base, ctx, form(assertion(ec_client, key="a-shared-secret-of-32-bytes-long!", alg="HS256", kid=None)))
    expect("alg_hs256", status, body, 401, "invalid_client")
    # A secret client cannot use an assertion, a private_key_jwt client no secret.
    status, body = post_token(base, ctx, form(assertion(secret_client)))
    expect("secret_client_assertion", status, body, 401, "invalid_client")
    status, body = post_token(base, ctx, {"grant_type": "client_credentials", "audience": audience},
                              basic=f"{ec_client}:{secret}")
    expect("pkjwt_client_secret", status, body, 401, "invalid_client")
    # An RSA key cannot sign ES256 for the EC client (key type pins the alg).
    status, body = post_token(base, ctx, form(assertion(ec_client, key=rsa_pem, alg="RS256", kid="ec1")))
    expect("alg_key_mismatch", status, body, 401, "invalid_client")

    # 3. Authlib: OAuth2Session with PrivateKeyJWT (RS256), client credentials.
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign

    class ShortLivedPrivateKeyJWT(PrivateKeyJWT):
        # Authlib signs assertions valid for 3600 s by default; certbound
        # accepts at most [oauth] max_assertion_lifetime_secs (300 s).
        def sign(self, auth, token_endpoint):
            return private_key_jwt_sign(auth.client_secret, client_id=auth.client_id,
                                        token_endpoint=token_endpoint, alg=self.alg,
                                        header={"kid": "rsa1"}, expires_in=60)

    session = OAuth2Session(rsa_client, rsa_pem.decode(),
                            token_endpoint_auth_method=ShortLivedPrivateKeyJWT(token_url))
    session.verify = ca
    try:
        # verify= per request: a session attribute loses to REQUESTS_CA_BUNDLE.
        token = session.fetch_token(token_url, grant_type="client_credentials",
                                    audience=audience, verify=ca)
        results["authlib"] = [200, token.get("token_type")]
        if not token.get("access_token"):
            failures.append(f"authlib: {token}")
    except Exception as e:  # noqa: BLE001 - report whatever Authlib raised
        results["authlib"] = [0, str(e)]
        failures.append(f"authlib: {e!r}")
    # Authlib's default (exp = now + 3600) is refused by the 300 s bound.
    default = OAuth2Session(rsa_client, rsa_pem.decode(),
                            token_endpoint_auth_method=PrivateKeyJWT(token_url, headers={"kid": "rsa1"}))
    default.verify = ca
    try:
        default.fetch_token(token_url, grant_type="client_credentials", audience=audience,
                            verify=ca)
        results["authlib_default_lifetime"] = [200, None]
        failures.append("authlib_default_lifetime: a 3600 s assertion was accepted")
    except Exception as e:  # noqa: BLE001
        results["authlib_default_lifetime"] = [401, str(e)]
        if "invalid_client" not in str(e):
            failures.append(f"authlib_default_lifetime: {e!r}")

    print(json.dumps({"results": results, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
        sys.exit(0)
    sys.exit(run(*sys.argv[2:11]))
