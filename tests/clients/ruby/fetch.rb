# Ruby's net-pop (a gem bundled with Debian's ruby) against a POP3 server, driven by
# tests/clients/test_ruby.py.
#
#   ruby fetch.rb MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]
#
# MODE: "user" (USER/PASS), "apop" (Net::APOP) or "ssl" (enable_ssl with CAFILE, implicit
# TLS; net-pop has no STLS). Writes LIST and UIDL as "N VALUE" lines (from each_mail's
# length and unique_id) to OUTDIR/list.txt and OUTDIR/uidl.txt, and each message as
# POPMail#pop returns it to OUTDIR/N.eml; "delete" deletes each message after reading it.
require 'net/pop'
require 'openssl'

mode, host, port, user, password, outdir, cafile, del = ARGV
pop = Net::POP3.new(host, Integer(port), mode == 'apop')
pop.open_timeout = pop.read_timeout = 20
if mode == 'ssl'
  pop.enable_ssl(verify_mode: OpenSSL::SSL::VERIFY_PEER, ca_file: cafile,
                 verify_hostname: true)
end
pop.start(user, password) do |session|
  mails = session.mails
  File.write(File.join(outdir, 'list.txt'), mails.map { |m| "#{m.number} #{m.length}\n" }.join)
  File.write(File.join(outdir, 'uidl.txt'), mails.map { |m| "#{m.number} #{m.unique_id}\n" }.join)
  mails.each do |mail|
    File.binwrite(File.join(outdir, "#{mail.number}.eml"), mail.pop)
    mail.delete if del == 'delete'
  end
end
