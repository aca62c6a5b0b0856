#!/usr/bin/env python3
"""Writes tests/fixtures/jwks/*.json: JWKS documents in the shapes the major
providers document, with fresh key material of our own (public keys only).

    python3 scripts/gen_jwks_fixtures.py
"""
import base64
import datetime
import hashlib
import json
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "jwks"


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def int_b64u(i):
    return b64u(i.to_bytes((i.bit_length() + 7) // 8, "big"))


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cert_der(key, cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def rsa_jwk(key, **extra):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "n": int_b64u(numbers.n), "e": int_b64u(numbers.e), **extra}


def with_x5c(key, cn):
    der = cert_der(key, cn)
    return {
        "x5c": [base64.b64encode(der).decode()],
        "x5t": b64u(hashlib.sha1(der).digest()),
    }


def ec_jwk(key, **extra):
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64u(numbers.x.to_bytes(32, "big")),
            "y": b64u(numbers.y.to_bytes(32, "big")), **extra}


def thumbprint(jwk):
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    return b64u(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def pem_cert(key, cn):
    der = cert_der(key, cn)
    body = base64.encodebytes(der).decode()
    return "-----BEGIN CERTIFICATE-----\n" + body + "-----END CERTIFICATE-----\n"


def write(name, document):
    (OUT / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")


OUT.mkdir(parents=True, exist_ok=True)

# Google: RS256 signing keys with alg and use.
write("google", {"keys": [rsa_jwk(rsa_key(), alg="RS256", use="sig", kid=f"g{i}") for i in range(2)]})

# Microsoft Entra: no alg, x5c/x5t, and an issuer member per key.
tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
entra = []
for i in range(3):
    key = rsa_key()
    kid = f"entra-{i}"
    entra.append({**rsa_jwk(key, use="sig", kid=kid), **with_x5c(key, "accounts.accesscontrol.windows.net"),
                  "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0"})
write("entra", {"keys": entra})

# Keycloak: an RS256 signing key, an RSA-OAEP encryption key, an ES256 key.
signing = rsa_key()
encryption = rsa_key()
ec_key = ec.generate_private_key(ec.SECP256R1())
keycloak = [
    {**rsa_jwk(signing, kid="kc-sig", alg="RS256", use="sig"), **with_x5c(signing, "main")},
    {**rsa_jwk(encryption, kid="kc-enc", alg="RSA-OAEP", use="enc"), **with_x5c(encryption, "main")},
    ec_jwk(ec_key, kid="kc-ec", alg="ES256", use="sig"),
]
keycloak[0]["x5t#S256"] = b64u(hashlib.sha256(base64.b64decode(keycloak[0]["x5c"][0])).digest())
write("keycloak", {"keys": keycloak})

# Auth0: RS256 with x5c, x5t.
auth0 = []
for i in range(2):
    key = rsa_key()
    auth0.append({"alg": "RS256", **rsa_jwk(key, use="sig", kid=f"auth0-{i}"), **with_x5c(key, "dev-example.us.auth0.com")})
write("auth0", {"keys": auth0})

# Okta: RS256 keys, plus a symmetric key that must be skipped.
write("okta", {"keys": [rsa_jwk(rsa_key(), alg="RS256", kid="okta-1", use="sig"),
                        {"kty": "oct", "kid": "okta-hmac", "k": b64u(b"not-a-public-key")}]})

# Cloudflare Access: keys plus public_cert and public_certs.
cf_keys = [rsa_key() for _ in range(2)]
cf_jwks = [rsa_jwk(k, kid=f"cf-{i}", alg="RS256", use="sig") for i, k in enumerate(cf_keys)]
cf_certs = [{"kid": f"cf-{i}", "cert": pem_cert(k, "example.cloudflareaccess.com")} for i, k in enumerate(cf_keys)]
write("cloudflare", {"keys": cf_jwks, "public_cert": cf_certs[-1], "public_certs": cf_certs})

# Pomerium: ES256 keys whose kid is the JWK thumbprint.
pom = ec_jwk(ec.generate_private_key(ec.SECP256R1()), use="sig", alg="ES256")
pom["kid"] = thumbprint(pom)
write("pomerium", {"keys": [pom]})
