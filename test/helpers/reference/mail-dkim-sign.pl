#!/usr/bin/perl
# Reference signer for tests: signs the message on stdin with Perl Mail::DKIM
# and prints the signed message (signature headers on top, in the order of the
# --type options, each computed over the original message).
#   --type dkim   DKIM-Signature, relaxed/relaxed, rsa-sha256
#   --type dk     DomainKey-Signature, c=nofws, rsa-sha1, no h= (so it covers
#                 every header below it, as libdomainkeys signs); give it
#                 last, or the headers printed under it break it
# Line ends are normalised to CRLF first (LF, CRLF and bare CR each become
# CRLF), because Mail::DKIM only understands CRLF and that is what goes on
# the wire.
use strict;
use warnings;
use Getopt::Long;
use Mail::DKIM::Signer;
use Mail::DKIM::TextWrap;    # folds the signature headers, as real signers do
use Mail::DKIM::Signature;
use Mail::DKIM::DkSignature;

my ( @types, $domain, $selector, $key_file );
GetOptions(
    'type=s'     => \@types,
    'domain=s'   => \$domain,
    'selector=s' => \$selector,
    'key=s'      => \$key_file,
  )
  && @types
  && $domain
  && $selector
  && $key_file
  or die "usage: mail-dkim-sign.pl --type dkim|dk [--type ...] "
  . "--domain D --selector S --key PRIVATE.pem < message\n";

my %make = (
    dkim => sub {
        my ($signer) = @_;
        Mail::DKIM::Signature->new(
            Algorithm => 'rsa-sha256',
            Method    => 'relaxed/relaxed',
            Headers   => $signer->headers,
            Domain    => $domain,
            Selector  => $selector,
        );
    },
    dk => sub {
        Mail::DKIM::DkSignature->new(
            Algorithm => 'rsa-sha1',
            Method    => 'nofws',
            Domain    => $domain,
            Selector  => $selector,
        );
    },
);
$make{$_} or die "unknown --type $_\n" for @types;

binmode STDIN;
binmode STDOUT;
my $message = do { local $/; <STDIN> };
$message =~ s/\015\012|\015|\012/\015\012/g;

# A policy that adds its own signatures is how Mail::DKIM::Signer makes
# DomainKey signatures (see "SIGNER POLICIES" in Mail::DKIM::Signer).
my $signer = Mail::DKIM::Signer->new(
    KeyFile => $key_file,
    Policy  => sub {
        my ($s) = @_;
        $s->add_signature( $make{$_}->($s) ) for @types;
        return 0;
    },
);
$signer->PRINT($message);
$signer->CLOSE;

my @signatures = $signer->signatures;
@signatures == @types or die "Mail::DKIM made no signature\n";
print $_->as_string, "\015\012" for @signatures;
print $message;
