#!/usr/bin/perl
# The Perl side of `npm run bench`: what the popular qmail-remote wrapper does
# before it hands the message to the real qmail-remote. It signs the message on
# stdin with Mail::DKIM in one pass (a DKIM-Signature, relaxed/relaxed,
# rsa-sha256, and a DomainKey-Signature, nofws, rsa-sha1), feeding it line by
# line with CRLF ends as the Mail::DKIM::Signer synopsis does, then prints the
# two signature fields and the message again (stdin is the queue file, so it
# is read a second time from the start, as the wrapper does).
# With --lf the signature fields end in LF, as in a queue file: for bench/perl-wrapper.sh,
# which hands the result to a qmail-remote.
#   mail-dkim-sign.pl DOMAIN SELECTOR PRIVATE-KEY-FILE [--lf] < message > signed
use strict;
use warnings;
use Mail::DKIM::Signer;
use Mail::DKIM::TextWrap;
use Mail::DKIM::Signature;
use Mail::DKIM::DkSignature;

my ( $domain, $selector, $key_file, $lf ) = @ARGV;
defined $key_file or die "usage: mail-dkim-sign.pl DOMAIN SELECTOR KEY < message\n";

my $signer = Mail::DKIM::Signer->new(
    KeyFile => $key_file,
    Policy  => sub {
        my ($s) = @_;
        $s->add_signature(
            Mail::DKIM::Signature->new(
                Algorithm => 'rsa-sha256',
                Method    => 'relaxed/relaxed',
                Headers   => $s->headers,
                Domain    => $domain,
                Selector  => $selector,
            )
        );
        $s->add_signature(
            Mail::DKIM::DkSignature->new(
                Algorithm => 'rsa-sha1',
                Method    => 'nofws',
                Domain    => $domain,
                Selector  => $selector,
            )
        );
        return 0;
    },
);

binmode STDIN;
binmode STDOUT;
while (<STDIN>) {
    chomp;
    s/\015$//;
    $signer->PRINT("$_\015\012");
}
$signer->CLOSE;
my @signatures = $signer->signatures;
@signatures == 2 or die "Mail::DKIM made no signature\n";
for my $signature (@signatures) {
    my $field = $signature->as_string . "\015\012";
    $field =~ s/\015\012/\012/g if defined $lf && $lf eq '--lf';
    print $field;
}

seek STDIN, 0, 0 or die "stdin is not seekable: $!\n";
my $buffer;
print $buffer while read STDIN, $buffer, 1 << 16;
