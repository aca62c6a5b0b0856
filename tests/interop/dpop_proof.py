#!/usr/bin/env python3
"""Mints DPoP proofs (RFC 9449) with PyJWT and cryptography, libraries
tower-authkit did not write, and computes the key's RFC 7638 thumbprint.

Reads {"kty": "EC"|"RSA"|"OKP", "keys": {"main": PEM, "other": PEM} (optional:
new keys when absent), "proofs": [spec, ...]} on stdin; prints {"jkt":
thumbprint, "keys": {...PEMs}, "proofs": [compact proof, ...]}, so a caller
can bind a token to the key first and ask for proofs next. A spec has htm, htu,
jti, iat (seconds since the epoch), ath_of (the access token whose SHA-256
goes into ath); optional: "key": "other" (sign with a second key),
"alg": "HS256" (a symmetric proof), "private_jwk": true (the header's jwk
carries the private key), "typ" (instead of dpop+jwt), "nonce" (a server nonce).
"""
import base64
import hashlib
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_key(kty, pem=None):
    if pem is not None:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    elif kty == "EC":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kty == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    algorithm, alg = {"EC": (ECAlgorithm, "ES256"), "RSA": (RSAAlgorithm, "PS256"), "OKP": (OKPAlgorithm, "EdDSA")}[kty]
    return key, algorithm, alg


def pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def thumbprint(jwk: dict) -> str:
    members = {name: jwk[name] for name in REQUIRED[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


request = json.load(sys.stdin)
given = request.get("keys", {})
keys = {name: new_key(request["kty"], given.get(name)) for name in ("main", "other")}
main_key, algorithm, _ = keys["main"]
public_jwk = json.loads(algorithm.to_jwk(main_key.public_key()))
out = {"jkt": thumbprint(public_jwk), "keys": {name: pem(k[0]) for name, k in keys.items()}, "proofs": []}
for spec in request["proofs"]:
    key, algorithm, alg = keys[spec.get("key", "main")]
    jwk = json.loads(algorithm.to_jwk(key if spec.get("private_jwk") else key.public_key()))
    claims = {
        "htm": spec["htm"],
        "htu": spec["htu"],
        "jti": spec["jti"],
        "iat": spec["iat"],
        "ath": b64url(hashlib.sha256(spec["ath_of"].encode()).digest()),
    }
    if "nonce" in spec:
        claims["nonce"] = spec["nonce"]
    headers = {"typ": spec.get("typ", "dpop+jwt"), "jwk": jwk}
    if spec.get("alg") == "HS256":
        proof = jwt.encode(claims, "a shared secret, which DPoP never allows", algorithm="HS256", headers=headers)
    else:
        proof = jwt.encode(claims, key, algorithm=alg, headers=headers)
    out["proofs"].append(proof)
print(json.dumps(out))
