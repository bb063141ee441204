#!/usr/bin/python3
"""Reference signer for tests: signs the message on stdin with dkimpy
(relaxed/relaxed) and prints the signed message, DKIM-Signature on top.
Used for ed25519-sha256, which Mail::DKIM cannot make. --key is a PEM RSA
key for rsa-sha256, or the base64 raw 32-byte seed for ed25519-sha256.
Line ends are normalised to CRLF first, as they go on the wire.
"""
import argparse
import re
import sys

import dkim


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--selector", required=True)
    parser.add_argument("--key", required=True, help="private key file")
    parser.add_argument("--algorithm", default="ed25519-sha256", choices=["ed25519-sha256", "rsa-sha256"])
    args = parser.parse_args()
    with open(args.key, "rb") as f:
        key = f.read().strip()

    message = re.sub(rb"\r\n|\r|\n", b"\r\n", sys.stdin.buffer.read())
    signature = dkim.sign(
        message,
        args.selector.encode("ascii"),
        args.domain.encode("ascii"),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=args.algorithm.encode("ascii"),
    )
    sys.stdout.buffer.write(signature + message)


main()
