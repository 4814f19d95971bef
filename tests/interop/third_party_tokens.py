"""Third-party tokens for `certbound token inspect --profile generic`, made by
libraries we did not write: a PyJWT ES256 JWT (typ "JWT", no cnf) and a
python-cwt ES256 CWT (no typ, no cnf), plus the public key as a JWKS.

usage: third_party_tokens.py OUT_DIR
writes OUT_DIR/{jwt.txt, cwt.hex, jwks.json}
"""
import json
import sys
import time

import cwt
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

out = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
now = int(time.time())

token = jwt.encode(
    {"iss": "https://idp.example.org", "sub": "alice", "aud": "https://api.example.org",
     "iat": now, "exp": now + 600, "role": "reader"},
    key, algorithm="ES256", headers={"kid": "third-party-1", "typ": "JWT"},
)
open(f"{out}/jwt.txt", "w").write(token)

jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "third-party-1", "alg": "ES256", "use": "sig"})
open(f"{out}/jwks.json", "w").write(json.dumps({"keys": [jwk]}))

priv = json.loads(ECAlgorithm.to_jwk(key))
priv.update({"kid": "third-party-1", "alg": "ES256"})
cose_key = cwt.COSEKey.from_jwk(priv)
encoded = cwt.encode(
    {"iss": "coap://as.example.org", "sub": "bob", "aud": "coap://light.example.org",
     "iat": now, "exp": now + 600},
    cose_key,
)
open(f"{out}/cwt.hex", "w").write(encoded.hex())
