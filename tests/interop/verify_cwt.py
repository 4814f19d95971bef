#!/usr/bin/env python3
"""Interop check: verify a certbound CWT with python-cwt (an implementation we
did not write) against the JWKS exported by `certbound keys export`, and check
that the token's cnf key equals the device certificate's public key (parsed
with `cryptography`). The cnf key is a compressed point (RFC 9053 §7.1.1: y is
the sign bit): `cryptography` decompresses it, independently of certbound.

usage: verify_cwt.py JWKS_FILE TOKEN_HEX CERT_PEM EXPECTED_SUB EXPECTED_AUD
Prints one JSON line with the decoded claims; exits non-zero on any failure.
A tampered copy of the token must be refused, or the script fails.
"""
import json
import sys

import cwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cwt import COSEKey


def main() -> int:
    jwks_file, token_hex, cert_pem, expected_sub, expected_aud = sys.argv[1:6]
    with open(jwks_file) as f:
        keys = [COSEKey.from_jwk(k) for k in json.load(f)["keys"]]
    token = bytes.fromhex(token_hex)

    claims = cwt.decode(token, keys)  # verifies the ES256 signature, exp and nbf
    assert claims[2] == expected_sub, f"sub {claims[2]!r} != {expected_sub!r}"
    assert claims[3] == expected_aud, f"aud {claims[3]!r} != {expected_aud!r}"

    # cnf (8) = {1: COSE_Key}: must be the certificate's public key.
    cose_key = claims[8][1]
    with open(cert_pem, "rb") as f:
        cert = x509.load_pem_x509_certificates(f.read())[0]
    numbers = cert.public_key().public_numbers()
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cose_key[1] == 2 and cose_key[-1] == 1, "cnf key is not EC2 P-256"
    x, y = cose_key[-2], cose_key[-3]
    assert isinstance(y, bool), f"cnf y should be the sign bit of a compressed point, got {y!r}"
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes([0x03 if y else 0x02]) + x)
    assert point.public_numbers() == numbers, "cnf key differs from the certificate key"
    assert 1 not in claims, "certbound CWTs name their issuer by the signing key, not iss"

    # A tampered token must be refused.
    tampered = bytearray(token)
    tampered[-1] ^= 0x01
    try:
        cwt.decode(bytes(tampered), keys)
    except Exception:  # noqa: BLE001 - any verification error is the expected outcome
        pass
    else:
        raise AssertionError("python-cwt accepted a tampered token")

    print(json.dumps({
        "sub": claims[2], "aud": claims[3], "exp": claims[4],
        "scope": claims.get(9), "cnf_matches_certificate": True,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
