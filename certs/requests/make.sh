#!/bin/sh
# Hostile certificates and CSRs for the signed-request / enrollment attack
# matrix (tests/e2e/attack_matrix/requests.rs) and the certbound-pki fuzz
# corpora. Made with `openssl` only (not with certbound), so that certbound's
# validator is tested against an independent encoder. TEST ONLY: the private
# keys here are public; never use them for anything else.
#
# Run from this directory (or through ../regenerate.sh). Everything is
# deterministic except keys, serials and signatures.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

p256() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# Long validity for everything but the expired CA (fixtures must not rot).
DAYS=36500
DEVICE_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
CA_EXT='basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

# ---------------------------------------------------------------------------
# 1. A foreign CA that copies certbound's names, and a device-like leaf under
#    it (CN and SAN of a device the test broker knows: sensor-good).
p256 foreign-ca.key.pem
printf '%s\n' "$CA_EXT" > "$tmp/ca.ext"
openssl req -new -x509 -key foreign-ca.key.pem -subj "/CN=certbound Issuing CA" \
    -days $DAYS -sha256 -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out foreign-ca.cert.pem
p256 foreign-device.key.pem
printf '%s\nsubjectAltName=URI:urn:certbound:device:sensor-good\n' "$DEVICE_EXT" > "$tmp/dev.ext"
openssl req -new -key foreign-device.key.pem -subj "/CN=sensor-good" -out "$tmp/dev.csr"
openssl x509 -req -in "$tmp/dev.csr" -CA foreign-ca.cert.pem -CAkey foreign-ca.key.pem \
    -set_serial 0x1001 -days $DAYS -sha256 -extfile "$tmp/dev.ext" -out foreign-device.cert.pem

# ---------------------------------------------------------------------------
# 2. An expired CA (valid 2020-01-01 .. 2021-01-01) and a leaf under it whose
#    own dates are fine (2020 .. 2120): the CA's expiry is what must refuse it.
#    `openssl ca` is the 3.0 way to set past dates (-startdate/-enddate).
p256 expired-ca.key.pem
mkdir -p "$tmp/ca/new"
: > "$tmp/ca/index.txt"
echo 2001 > "$tmp/ca/serial"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = old
[old]
dir = $tmp/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
email_in_dn = no
[any]
commonName = supplied
[ca_ext]
$CA_EXT
[dev_ext]
$DEVICE_EXT
subjectAltName=URI:urn:certbound:device:old-partner-1
CNF
openssl req -new -key expired-ca.key.pem -subj "/CN=Expired Partner CA" -out "$tmp/old.csr"
openssl ca -batch -config "$tmp/ca.cnf" -selfsign -keyfile expired-ca.key.pem \
    -in "$tmp/old.csr" -extensions ca_ext -startdate 20200101000000Z -enddate 20210101000000Z \
    -notext -out expired-ca.cert.pem 2>/dev/null
p256 expired-ca-device.key.pem
openssl req -new -key expired-ca-device.key.pem -subj "/CN=old-partner-1" -out "$tmp/olddev.csr"
openssl ca -batch -config "$tmp/ca.cnf" -cert expired-ca.cert.pem -keyfile expired-ca.key.pem \
    -in "$tmp/olddev.csr" -extensions dev_ext -startdate 20200101000000Z -enddate 21200101000000Z \
    -notext -out expired-ca-device.cert.pem 2>/dev/null

# ---------------------------------------------------------------------------
# 3. Leaves that break the device profile. The tests sign the same requests
#    with the test broker's own issuing CA at test time (`leaf-*.ext` with
#    `openssl x509 -req`); here they are signed by the foreign CA for the
#    unit tests and fuzz seeds. All use one key, leaf.key.pem.
p256 leaf.key.pem
# CN names one device, the SAN URI another (CN/iss mismatch).
printf '%s\nsubjectAltName=URI:urn:certbound:device:sensor-victim\n' "$DEVICE_EXT" > leaf-cn-san-mismatch.ext
# Two device URIs.
printf '%s\nsubjectAltName=URI:urn:certbound:device:sensor-hostile,URI:urn:certbound:device:sensor-victim\n' \
    "$DEVICE_EXT" > leaf-two-device-uris.ext
# A CA certificate used as a device leaf.
printf '%s\n%s\n' "basicConstraints=critical,CA:TRUE
keyUsage=critical,digitalSignature,keyCertSign
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid" 'subjectAltName=URI:urn:certbound:device:sensor-hostile' > leaf-ca-true.ext
# A critical extension certbound does not know (OID 1.3.6.1.4.1.55555.1).
printf '%s\nsubjectAltName=URI:urn:certbound:device:sensor-hostile\n1.3.6.1.4.1.55555.1=critical,DER:05:00\n' \
    "$DEVICE_EXT" > leaf-critical-unknown.ext
for case in cn-san-mismatch two-device-uris ca-true critical-unknown; do
    openssl req -new -key leaf.key.pem -subj "/CN=sensor-hostile" -out "$tmp/leaf.csr"
    openssl x509 -req -in "$tmp/leaf.csr" -CA foreign-ca.cert.pem -CAkey foreign-ca.key.pem \
        -set_serial "0x3$(printf %03x ${#case})$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
        -days $DAYS -sha256 -extfile "leaf-$case.ext" -out "leaf-$case.cert.pem"
done

# ---------------------------------------------------------------------------
# 4. CSRs. The device they are for is `sensor-csr` (CN and SAN URI), except
#    where the point is another name.
p256 csr.key.pem
URI='URI:urn:certbound:device:sensor-csr'
openssl req -new -key csr.key.pem -subj "/CN=sensor-csr" -addext "subjectAltName=$URI" \
    -out csr-good.csr.pem
openssl req -new -key csr.key.pem -subj "/CN=sensor-csr" -addext "subjectAltName=$URI" \
    -addext "basicConstraints=critical,CA:TRUE" -out csr-ca-true.csr.pem
openssl req -new -key csr.key.pem -subj "/CN=sensor-csr" \
    -addext "subjectAltName=$URI,DNS:evil.example.com,IP:10.0.0.1" -out csr-extra-san.csr.pem
openssl req -new -key csr.key.pem -subj "/CN=sensor-csr" \
    -addext "subjectAltName=URI:urn:certbound:device:sensor-victim" -out csr-other-device.csr.pem
openssl req -new -key csr.key.pem -subj "/CN=sensor-victim" -addext "subjectAltName=$URI" \
    -out csr-other-cn.csr.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out csr-rsa1024.key.pem 2>/dev/null
openssl req -new -key csr-rsa1024.key.pem -subj "/CN=sensor-csr" -addext "subjectAltName=$URI" \
    -sha256 -out csr-rsa1024.csr.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out csr-p384.key.pem
openssl req -new -key csr-p384.key.pem -subj "/CN=sensor-csr" -addext "subjectAltName=$URI" \
    -sha256 -out csr-p384.csr.pem

# ---------------------------------------------------------------------------
# 5. The 8-certificate crafted chain ("hydra"): one key K for everything;
#    four CA certificates "Hydra A" issued by "Hydra B" and four "Hydra B"
#    issued by "Hydra A", all signed by K, so that every link verifies and a
#    naive path builder walks every ordering (hundreds of ECDSA checks) before
#    finding no trust anchor. The leaf (device-like, sensor-hydra) is issued
#    by "Hydra A". hydra-chain.pem = the eight CA certificates.
p256 hydra.key.pem
printf '%s\n' "$CA_EXT" > "$tmp/hydra-ca.ext"
for n in A B; do
    openssl req -new -x509 -key hydra.key.pem -subj "/CN=Hydra $n" -days $DAYS -sha256 \
        -out "$tmp/signer-$n.pem"
done
: > hydra-chain.pem
i=0
for pair in "A B" "B A" "A B" "B A" "A B" "B A" "A B" "B A"; do
    set -- $pair
    i=$((i + 1))
    openssl req -new -key hydra.key.pem -subj "/CN=Hydra $1" -out "$tmp/h.csr"
    openssl x509 -req -in "$tmp/h.csr" -CA "$tmp/signer-$2.pem" -CAkey hydra.key.pem \
        -set_serial $((0x4000 + i)) -days $DAYS -sha256 -extfile "$tmp/hydra-ca.ext" \
        -out "$tmp/h$i.pem"
    cat "$tmp/h$i.pem" >> hydra-chain.pem
done
printf '%s\nsubjectAltName=URI:urn:certbound:device:sensor-hydra\n' "$DEVICE_EXT" > "$tmp/hleaf.ext"
openssl req -new -key hydra.key.pem -subj "/CN=sensor-hydra" -out "$tmp/hl.csr"
openssl x509 -req -in "$tmp/hl.csr" -CA "$tmp/signer-A.pem" -CAkey hydra.key.pem \
    -set_serial 0x4100 -days $DAYS -sha256 -extfile "$tmp/hleaf.ext" -out hydra-leaf.cert.pem

# DER copies of the fuzz seeds' raw inputs.
for f in foreign-device expired-ca-device hydra-leaf leaf-cn-san-mismatch leaf-two-device-uris \
    leaf-ca-true leaf-critical-unknown; do
    openssl x509 -in "$f.cert.pem" -outform DER -out "$f.cert.der"
done
for f in csr-good csr-ca-true csr-extra-san csr-other-device csr-other-cn csr-rsa1024 csr-p384; do
    openssl req -in "$f.csr.pem" -outform DER -out "$f.csr.der"
done
# A PKCS#7 certs-only message made by openssl (the EST answer format).
cat foreign-device.cert.pem foreign-ca.cert.pem > "$tmp/p7.pem"
openssl crl2pkcs7 -nocrl -certfile "$tmp/p7.pem" -outform DER -out foreign-chain.p7b.der
echo "certs/requests: done"
