#!/usr/bin/env python3
"""Interop check of certbound's signing algorithms per API with a library we
did not write: PyJWT (with `cryptography`) verifies RS256, PS256 and EdDSA
JWTs issued by a running certbound against its /.well-known/jwks.json,
through PyJWKClient (the JWKS fetched over TLS, the key picked by kid).

usage: jwt_algs.py BASE_URL CA_PEM ISSUER CLIENT_ID CLIENT_SECRET AUDIENCE=ALG...
For each AUDIENCE=ALG:
1. client_secret_basic gets a JWT whose header alg is ALG;
2. PyJWKClient finds its key: kty and JWK alg as RFC 7518/8037 say
   (RSA with n/e for RS256/PS256, OKP Ed25519 for EdDSA);
3. PyJWT verifies signature, typ, iss, aud, exp;
4. a tampered payload (scope changed) is refused with InvalidSignatureError;
5. the token verified as another algorithm is refused (PyJWT's key/algorithm
   check), so is the header relabelled to another algorithm.
Prints one JSON line; exits non-zero on any failure.
"""
import base64
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

import jwt


def request(url, ctx, data=None, headers=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


KTY = {"ES256": "EC", "RS256": "RSA", "PS256": "RSA", "EdDSA": "OKP"}


def main() -> int:
    base, ca, issuer, client_id, secret = sys.argv[1:6]
    pairs = [a.rsplit("=", 1) for a in sys.argv[6:]]
    ctx = ssl.create_default_context(cafile=ca)
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}".encode()
    auth = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    client = jwt.PyJWKClient(base + "/.well-known/jwks.json", ssl_context=ctx)
    status, body = request(base + "/.well-known/jwks.json", ctx)
    assert status == 200, status
    jwks = {k["kid"]: k for k in json.loads(body)["keys"]}
    out = {"verified": {}, "tampered_refused": [], "confusion_refused": []}
    kids = set()

    for audience, alg in pairs:
        form = {"grant_type": "client_credentials", "audience": audience}
        status, body = request(base + "/oauth/token", ctx, form, auth)
        assert status == 200, (audience, status, body)
        token = json.loads(body)["access_token"]
        header = jwt.get_unverified_header(token)
        assert header["alg"] == alg, (alg, header)
        assert header["typ"] == "at+jwt", header
        kids.add(header["kid"])

        signing_key = client.get_signing_key_from_jwt(token)
        jwk = jwks[header["kid"]]
        assert jwk["kty"] == KTY[alg] and jwk["alg"] == alg and jwk["use"] == "sig", jwk
        assert "d" not in jwk and "p" not in jwk, "a private member in the JWKS"
        if alg in ("RS256", "PS256"):
            assert len(unb64url(jwk["n"])) * 8 >= 2048, jwk
        if alg == "EdDSA":
            assert jwk["crv"] == "Ed25519", jwk

        def verify(text, algorithms=(alg,)):
            return jwt.decode(
                text,
                signing_key.key,
                algorithms=list(algorithms),
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )

        claims = verify(token)
        assert claims["client_id"] == client_id, claims
        out["verified"][alg] = sorted(claims)

        h, p, s = token.split(".")
        payload = json.loads(unb64url(p))
        payload["scope"] = payload.get("scope", "") + " admin"
        forged = ".".join([h, b64url(json.dumps(payload).encode()), s])
        try:
            verify(forged)
            raise AssertionError(f"PyJWT accepted a tampered {alg} token")
        except jwt.InvalidSignatureError:
            out["tampered_refused"].append(alg)

        # Another algorithm for the same key: RS256 <-> PS256 relabelled
        # headers do not verify, and PyJWT refuses a key of the wrong type.
        other = {"RS256": "PS256", "PS256": "RS256", "EdDSA": "ES256", "ES256": "EdDSA"}[alg]
        relabelled_header = dict(header, alg=other)
        relabelled = ".".join([b64url(json.dumps(relabelled_header).encode()), p, s])
        try:
            verify(relabelled, algorithms=(other,))
            raise AssertionError(f"PyJWT accepted a {alg} token relabelled {other}")
        except (jwt.InvalidSignatureError, jwt.InvalidKeyError, jwt.exceptions.PyJWTError, TypeError, ValueError):
            out["confusion_refused"].append(alg)

    assert len(kids) == len(pairs), f"a distinct kid per algorithm: {kids}"
    out["kids"] = sorted(kids)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
