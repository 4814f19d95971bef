#!/usr/bin/env python3
"""Interop check: certbound's custom claims, decoded by implementations we did
not write.

usage:
  custom_claims.py cwt JWKS_FILE TOKEN_HEX EXPECTED_JSON
  custom_claims.py jwt JWKS_FILE TOKEN AUDIENCE EXPECTED_JSON

cwt: python-cwt verifies the device CWT's ES256 signature against the JWKS;
     cbor2 decodes the COSE_Sign1 payload on its own, and every label of
     EXPECTED_JSON (an object whose keys are CWT labels: "-65537" for an
     integer label, "floor" for a text label) must hold exactly the expected
     value and CBOR type (int stays int, bool stays bool). Labels mapped to
     null must be absent.
jwt: PyJWT verifies the ES256 JWT against the JWKS (kid lookup) and the
     audience; every claim of EXPECTED_JSON must hold the expected value with
     the same JSON type; null means absent.
Prints one JSON line with what it found; exits non-zero on any failure.
"""
import json
import sys


def same(found, want):
    return found == want and type(found) is type(want)


def check_cwt(jwks_file, token_hex, expected):
    import cbor2
    import cwt
    from cwt import COSEKey

    with open(jwks_file) as f:
        keys = [COSEKey.from_jwk(k) for k in json.load(f)["keys"]]
    token = bytes.fromhex(token_hex)
    verified = cwt.decode(token, keys)  # ES256 signature, exp, nbf
    assert isinstance(verified, dict), "python-cwt returned no claims"

    # cbor2, independently: COSE_Sign1 (tag 18) = [protected, unprotected, payload, signature].
    outer = cbor2.loads(token)
    sign1 = outer.value if isinstance(outer, cbor2.CBORTag) else outer
    claims = cbor2.loads(sign1[2])
    found = {}
    for label, want in expected.items():
        key = int(label) if label.lstrip("-").isdigit() else label
        if want is None:
            assert key not in claims, f"label {key!r} should be absent, found {claims.get(key)!r}"
            continue
        assert key in claims, f"label {key!r} missing; labels: {sorted(map(repr, claims))}"
        assert same(claims[key], want), f"label {key!r}: {claims[key]!r} != {want!r}"
        found[label] = claims[key]
    # Registered claims are where they always are, and not replaced.
    assert isinstance(claims[2], str) and isinstance(claims[8], dict), "sub/cnf replaced"
    return {"format": "cwt", "claims": found, "scope": claims.get(9)}


def check_jwt(jwks_file, token, audience, expected):
    import jwt

    with open(jwks_file) as f:
        keys = {k["kid"]: jwt.PyJWK(k) for k in json.load(f)["keys"]}
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, keys[kid].key, algorithms=["ES256"], audience=audience)
    found = {}
    for name, want in expected.items():
        if want is None:
            assert name not in claims, f"claim {name!r} should be absent"
            continue
        assert name in claims, f"claim {name!r} missing; claims: {sorted(claims)}"
        assert same(claims[name], want), f"claim {name!r}: {claims[name]!r} != {want!r}"
        found[name] = claims[name]
    return {"format": "jwt", "claims": found, "scope": claims.get("scope")}


def main() -> int:
    mode = sys.argv[1]
    if mode == "cwt":
        out = check_cwt(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif mode == "jwt":
        out = check_jwt(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: use cwt or jwt")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
