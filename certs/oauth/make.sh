#!/bin/sh
# Regenerates the OAuth client-certificate fixtures (test only, never
# production keys), all made with openssl, not with certbound:
#
#   operator-ca.{key,cert}.pem   an operator's own CA (not the certbound CA)
#   reporting-dn.{key,cert}.pem  a client certificate of that CA, subject
#                                CN=reporting-svc,O=Operator, SAN
#                                DNS:reporting.operator.example
#   reporting-san.{key,cert}.pem a client certificate of that CA, SAN
#                                URI:https://operator.example/svc/reporting
#   impostor-device.{key,cert}.pem a certificate of that CA claiming a
#                                certbound device identity (SAN
#                                URI:urn:certbound:device:reporting): never a client
#   self-signed.{key,cert}.pem   a self-signed client certificate
#                                (RFC 8705 self_signed_tls_client_auth)
#   self-signed-other.{key,cert}.pem another one, never pinned
#
# Usage: certs/oauth/make.sh   (run from anywhere; writes next to itself)
set -eu
cd "$(dirname "$0")"
DAYS=36500
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# The operator's CA.
key operator-ca.key.pem
openssl req -new -x509 -key operator-ca.key.pem -out operator-ca.cert.pem -days "$DAYS" \
  -subj "/O=Operator/CN=Operator Client CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash"

# leaf NAME SUBJECT SAN
leaf() {
  key "$1.key.pem"
  openssl req -new -key "$1.key.pem" -subj "$2" -out "$tmp/$1.csr"
  cat > "$tmp/$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$3
EXT
  openssl x509 -req -in "$tmp/$1.csr" -CA operator-ca.cert.pem -CAkey operator-ca.key.pem \
    -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -sha256 \
    -extfile "$tmp/$1.ext" -out "$1.cert.pem" 2>/dev/null
}

leaf reporting-dn "/O=Operator/CN=reporting-svc" "DNS:reporting.operator.example"
leaf reporting-san "/O=Operator/CN=anything" "URI:https://operator.example/svc/reporting"
leaf impostor-device "/CN=reporting" "URI:urn:certbound:device:reporting"

# selfsigned NAME CN SUBJECT
selfsigned() {
  key "$1.key.pem"
  openssl req -new -x509 -key "$1.key.pem" -out "$1.cert.pem" -days "$DAYS" \
    -subj "$3" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=clientAuth"
}
selfsigned self-signed "pinned-client" "/CN=pinned-client"
selfsigned self-signed-other "reporting-svc" "/O=Operator/CN=reporting-svc"

echo "certs/oauth: fixtures written"
