#!/usr/bin/python3
"""Independent verifier: checks every DKIM-Signature of the message on stdin
with dkimpy and prints one JSON line:
  {"signatures":[{"type":"dkim","domain":..,"selector":..,"algorithm":..,
                  "result":..,"detail":..}, ...]}
dkimpy does not do DomainKeys, so DomainKey-Signature headers are not listed.
Keys are fetched from the DNS server given by --dns ADDRESS:PORT only.
"""
import argparse
import json
import logging
import sys

import dkim
import dkim.util
from dkimpy_dns import txt_lookup


class Errors(logging.Handler):
    """dkimpy logs key and DNS problems and returns False instead of raising;
    keep those messages so the result can say why."""
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def tags(value):
    try:
        return dkim.util.parse_tag_value(value)
    except dkim.util.InvalidTagValueList:
        return {}


def verify_one(message, idx, dnsfunc):
    errors = Errors()
    logger = logging.getLogger("dkimpy-%d" % idx)
    logger.addHandler(errors)
    logger.propagate = False
    try:
        ok = dkim.DKIM(message, logger=logger).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.ValidationError as e:
        # Raised for a body hash mismatch but also for bad signature tags.
        return ("fail" if "body hash mismatch" in str(e) else "invalid"), str(e)
    except dkim.DKIMException as e:
        return "invalid", str(e)
    if ok:
        return "pass", ""
    if errors.messages:
        detail = "; ".join(errors.messages)
        return ("temperror" if detail.startswith("DnsTimeoutError") else "invalid"), detail
    return "fail", "signature did not verify"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dns", required=True, help="ADDRESS:PORT of the DNS server")
    address, _, port = parser.parse_args().dns.rpartition(":")
    dnsfunc = txt_lookup(address, int(port))

    message = sys.stdin.buffer.read()
    try:
        headers = dkim.DKIM(message).headers
    except dkim.DKIMException as e:
        print(json.dumps({"signatures": [], "error": str(e)}))
        return
    # verify(idx=i) counts DKIM-Signature headers from the top, like this list.
    values = [v for (name, v) in headers if name.lower() == b"dkim-signature"]
    signatures = []
    for idx, value in enumerate(values):
        sig = tags(value)
        result, detail = verify_one(message, idx, dnsfunc)
        signatures.append({
            "type": "dkim",
            "domain": sig.get(b"d", b"").decode("ascii", "replace"),
            "selector": sig.get(b"s", b"").decode("ascii", "replace"),
            "algorithm": sig.get(b"a", b"").decode("ascii", "replace"),
            "result": result,
            "detail": detail,
        })
    print(json.dumps({"signatures": signatures}, sort_keys=True))


main()
