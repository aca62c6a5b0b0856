#!/usr/bin/env python3
"""Mints JWTs with PyJWT, an implementation tower-authkit did not write.

Reads a JSON array of {"alg", "kid", "pem", "claims"} on stdin and prints one
compact token per line, in order.
"""
import json
import sys

import jwt

for item in json.load(sys.stdin):
    token = jwt.encode(item["claims"], item["pem"], algorithm=item["alg"], headers={"kid": item["kid"]})
    print(token)
