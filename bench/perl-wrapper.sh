#!/bin/sh
# The "Perl wrapper model" of `npm run bench`: how sites have signed in Perl in front of qmail's
# own qmail-remote. qmail-rspawn runs a script in qmail-remote's place; the script has Mail::DKIM
# sign the message into a temporary file (the signature fields, with LF ends as in a queue
# file, then the message), then runs the real qmail-remote with that file on fd 0.
#   perl-wrapper.sh DOMAIN SELECTOR KEY DELIVERY-COMMAND [ARGUMENTS...] < message
set -e
dir=$(dirname "$0")
domain=$1
selector=$2
key=$3
shift 3
signed=$(mktemp)
trap 'rm -f "$signed"' EXIT
/usr/bin/perl "$dir/mail-dkim-sign.pl" "$domain" "$selector" "$key" --lf > "$signed"
"$@" < "$signed"
