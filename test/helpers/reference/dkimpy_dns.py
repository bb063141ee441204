"""The DNS hook both dkimpy scripts give dkimpy: TXT records from one server only."""
import dkim
import dns.exception
import dns.message
import dns.query
import dns.rdatatype


def txt_lookup(address, port):
    """A dnsfunc for dkim.DKIM.verify (its documented DNS hook) that asks one
    server directly instead of the system resolver."""
    def dnsfunc(name, timeout=5):
        query = dns.message.make_query(name.decode("ascii"), dns.rdatatype.TXT)
        try:
            # Falls back to TCP when the answer is truncated (big RSA keys).
            response, _ = dns.query.udp_with_fallback(query, address, timeout=timeout, port=port)
        except (dns.exception.DNSException, OSError) as e:
            raise dkim.DnsTimeoutError(str(e))
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                # A record split into several strings is one value (RFC 6376 §3.6.2.2).
                return b"".join(next(iter(rrset)).strings)
        return None
    return dnsfunc
