#!/usr/bin/python3
"""Independent ARC (RFC 8617) reference, dkimpy's arc_verify and arc_sign.

  dkimpy-arc.py verify --dns ADDRESS:PORT    < message
      prints one JSON line: {"cv": "pass"|"fail"|"none", "reason": ..., "instances": N}
  dkimpy-arc.py seal --domain D --selector S --key FILE --srv-id ID  < message
      prints the message with a new ARC set on top: a sealer other than ours, for chains
      that we then extend. The message needs an Authentication-Results field of ID.

Keys are fetched from the DNS server given by --dns only. Line ends are normalised to CRLF.
"""
import argparse
import json
import re
import sys

import dkim
from dkimpy_dns import txt_lookup


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["verify", "seal"])
    parser.add_argument("--dns")
    parser.add_argument("--domain")
    parser.add_argument("--selector")
    parser.add_argument("--key")
    parser.add_argument("--srv-id")
    args = parser.parse_args()
    message = re.sub(rb"\r\n|\r|\n", b"\r\n", sys.stdin.buffer.read())
    if args.mode == "verify":
        address, _, port = args.dns.rpartition(":")
        cv, results, reason = dkim.arc_verify(message, dnsfunc=txt_lookup(address, int(port)))
        print(json.dumps({"cv": cv.decode("ascii") if cv else None, "reason": reason, "instances": len(results)}, sort_keys=True))
        return
    with open(args.key, "rb") as f:
        key = f.read()
    fields = dkim.arc_sign(message, args.selector.encode("ascii"), args.domain.encode("ascii"), key,
                           args.srv_id.encode("ascii"))
    sys.stdout.buffer.write(b"".join(fields) + message)


main()
