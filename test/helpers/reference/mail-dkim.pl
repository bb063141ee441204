#!/usr/bin/perl
# Independent verifier: checks every DomainKey-Signature and DKIM-Signature of
# the message on stdin with Perl Mail::DKIM and prints one JSON line:
#   {"signatures":[{"type":"dk"|"dkim","domain":..,"selector":..,
#                   "algorithm":..,"result":..,"detail":..}, ...]}
# The message must be as it goes on the wire: CRLF line ends, no
# dot-stuffing (Mail::DKIM::Verifier->load documents CRLF input).
# Keys are fetched from the DNS server given by --dns ADDRESS:PORT only.
use strict;
use warnings;
use Getopt::Long;
use JSON::PP;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

my $dns = '';
my $dk_identity;
GetOptions( 'dns=s' => \$dns, 'dk-identity=s' => \$dk_identity ) && $dns =~ /^([0-9.]+):([0-9]+)$/
  or die "usage: mail-dkim.pl --dns ADDRESS:PORT [--dk-identity DOMAIN] < message\n";
my ( $address, $port ) = ( $1, $2 );

# Mail::DKIM takes a DomainKeys signer's identity from the first line of the From:/Sender:
# field only, through Mail::Address (DkCommon.pm matches /^(from|sender)\s*:(.*)$/ without
# /s). A folded From:, a display name holding '@' or a group then reads as "bad identity"
# before the signature itself is checked. --dk-identity gives the domain an RFC 5322 parser
# finds, so that d= is still checked against it and the cryptography is checked at all.
if ( defined $dk_identity ) {
    no warnings 'redefine';
    my $original = \&Mail::DKIM::Verifier::check_signature_identity;
    *Mail::DKIM::Verifier::check_signature_identity = sub {
        my ($signature) = @_;
        return $original->(@_) unless $signature->isa('Mail::DKIM::DkSignature');
        # The key's g= check reads the identity next; give it the address's domain too.
        $signature->init_identity( "\@$dk_identity", 'header.from' );
        return Mail::DKIM::Verifier::match_subdomain( $dk_identity, $signature->domain );
    };
}

# Mail::DKIM::DNS::resolver() is the documented hook for the resolver that
# fetches public keys; without it Mail::DKIM would ask /etc/resolv.conf.
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(
        nameservers => [$address],
        port        => $port,
        retry       => 2,
        udp_timeout => 5,
        tcp_timeout => 5,
    )
);

binmode STDIN;
my $verifier = Mail::DKIM::Verifier->new();
$verifier->load(*STDIN);

# Mail::DKIM reports DomainKeys signatures as Mail::DKIM::DkSignature objects
# beside the DKIM ones, each with its own result.
my @signatures = map {
    {
        type      => $_->isa('Mail::DKIM::DkSignature') ? 'dk' : 'dkim',
        domain    => $_->domain    // '',
        selector  => $_->selector  // '',
        algorithm => $_->algorithm // '',
        result    => $_->result    // 'none',
        detail    => $_->result_detail // '',
    }
} $verifier->signatures;

print JSON::PP->new->canonical->encode( { signatures => \@signatures } ), "\n";
