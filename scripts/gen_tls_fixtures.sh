#!/usr/bin/env bash
# Regenerates tests/fixtures/tls: a test-only CA and a leaf certificate for
# localhost / 127.0.0.1, used by the Pomerium client's HTTP/2-over-TLS test.
# The keys are public test material; never use them for anything else.
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500 \
  -subj "/CN=tower-authkit test CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout localhost.key -out localhost.csr
openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 \
  -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') \
  -out localhost.pem
# PKCS#8 for rustls-pki-types' PEM reader.
openssl pkcs8 -topk8 -nocrypt -in localhost.key -out localhost.key.p8 && mv localhost.key.p8 localhost.key
rm -f localhost.csr ca.key ca.srl
