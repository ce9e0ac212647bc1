#!/usr/bin/perl
# Perl's Net::POP3 (libnet) against a POP3 server, driven by tests/clients/test_perl.py.
#
#   perl fetch.pl MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]
#
# MODE is how to log in: user (login: USER/PASS), apop, sasl (auth: Authen::SASL with the
# mechanisms of CAPA), stls (starttls, then login) or ssl (implicit TLS, then login).
# Writes each message as get() returns it (dot-unstuffed; LF line ends over TCP, CRLF over TLS) to OUTDIR/N.eml, the
# LIST and UIDL listings to OUTDIR/list.txt and OUTDIR/uidl.txt; "delete" deletes each message.
use strict;
use warnings;
use Net::POP3;

my ($mode, $host, $port, $user, $password, $outdir, $ca, $delete) = @ARGV;
die "usage: fetch.pl MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]\n" unless defined $outdir;
my @tls = defined $ca && $ca ne '' ? (SSL_ca_file => $ca, SSL_verifycn_name => 'localhost') : ();

my $pop = Net::POP3->new(
    $host,
    Port    => $port,
    Timeout => 20,
    ($mode eq 'ssl' ? (SSL => 1, @tls) : ()),
) or die "connect: $@\n";

if ($mode eq 'stls') {
    $pop->starttls(@tls) or die "starttls: " . $pop->message;
}
my $count;
if ($mode eq 'apop') {
    $count = $pop->apop($user, $password);
}
elsif ($mode eq 'sasl') {
    $count = $pop->auth($user, $password) ? ($pop->popstat)[0] : undef;
}
else {
    $count = $pop->login($user, $password);
}
defined $count or die "login ($mode) failed: " . $pop->message;

my $list = $pop->list or die "LIST: " . $pop->message;
my $uidl = $pop->uidl or die "UIDL: " . $pop->message;
open my $lf, '>', "$outdir/list.txt" or die $!;
print $lf "$_ $list->{$_}\n" for sort { $a <=> $b } keys %$list;
close $lf;
open my $uf, '>', "$outdir/uidl.txt" or die $!;
print $uf "$_ $uidl->{$_}\n" for sort { $a <=> $b } keys %$uidl;
close $uf;

for my $number (sort { $a <=> $b } keys %$list) {
    my $lines = $pop->get($number) or die "RETR $number: " . $pop->message;
    open my $fh, '>:raw', "$outdir/$number.eml" or die $!;
    print $fh @$lines;
    close $fh;
    if (defined $delete && $delete eq 'delete') {
        $pop->delete($number) or die "DELE $number: " . $pop->message;
    }
}
$pop->quit or die "QUIT: " . $pop->message;
