<?php
// PHP's imap extension (c-client, Debian's php-imap) against a POP3 server, driven by
// tests/clients/test_php.py.
//
//   php fetch.php FLAGS HOST PORT USER PASSWORD OUTDIR [delete]
//
// FLAGS are the mailbox flags after /pop3, e.g. "/notls", "/tls" (STLS) or "/ssl" (implicit
// TLS); c-client verifies certificates against OpenSSL's default store (the test points
// SSL_CERT_FILE at its CA). Writes imap_num_msg() to OUTDIR/count.txt and each message as
// imap_fetchheader() . imap_body() to OUTDIR/N.eml; "delete" marks each one deleted and
// expunges (DELE ... QUIT) before closing.
[, $flags, $host, $port, $user, $password, $outdir] = $argv;
$delete = ($argv[7] ?? '') === 'delete';
imap_timeout(IMAP_OPENTIMEOUT, 20);
imap_timeout(IMAP_READTIMEOUT, 20);
$mailbox = sprintf('{%s:%d/pop3%s}INBOX', $host, $port, $flags);
$mbox = imap_open($mailbox, $user, $password, 0, 0);
if ($mbox === false) {
    fwrite(STDERR, "imap_open($mailbox): " . imap_last_error() . "\n");
    exit(1);
}
$count = imap_num_msg($mbox);
file_put_contents("$outdir/count.txt", "$count\n");
for ($number = 1; $number <= $count; $number++) {
    $message = imap_fetchheader($mbox, $number) . imap_body($mbox, $number);
    file_put_contents("$outdir/$number.eml", $message);
    if ($delete) {
        imap_delete($mbox, (string) $number);
    }
}
imap_close($mbox, $delete ? CL_EXPUNGE : 0);
$errors = imap_errors();
if ($errors !== false) {
    fwrite(STDERR, implode("\n", $errors) . "\n");
}
