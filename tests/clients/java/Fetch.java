// Jakarta Mail's POP3 provider (Debian's libjakarta-mail-java) against a POP3 server, driven by
// tests/clients/test_java.py, which compiles this file with javac.
//
//   java -cp CLASSPATH Fetch MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]
//
// MODE: "user" (the default mechanisms, "LOGIN PLAIN DIGEST-MD5 NTLM XOAUTH2", where Jakarta
// Mail's "LOGIN" is USER/PASS, not SASL LOGIN), "sasl" (mail.pop3.auth.mechanisms=PLAIN:
// AUTH PLAIN with an initial response), "stls"
// (mail.pop3.starttls.required) or "ssl" (the pop3s provider, implicit TLS); TLS trusts only
// CAFILE and checks the server's name. Writes "N SIZE" (getSize: the body's size) and "N UID" (getUID) lines
// to OUTDIR/list.txt and OUTDIR/uidl.txt and each message as writeTo() writes it to
// OUTDIR/N.eml; "delete" sets the DELETED flag on each and closes the folder with expunge.
import jakarta.mail.Flags;
import jakarta.mail.Folder;
import jakarta.mail.Message;
import jakarta.mail.Session;
import jakarta.mail.Store;
import com.sun.mail.pop3.POP3Folder;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Properties;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public final class Fetch {
    public static void main(String[] args) throws Exception {
        String mode = args[0], host = args[1], port = args[2], user = args[3], password = args[4];
        Path outdir = Path.of(args[5]);
        String ca = args.length > 6 ? args[6] : "";
        boolean delete = args.length > 7 && args[7].equals("delete");
        String protocol = mode.equals("ssl") ? "pop3s" : "pop3";
        String p = "mail." + protocol + ".";

        Properties props = new Properties();
        props.setProperty(p + "connectiontimeout", "20000");
        props.setProperty(p + "timeout", "20000");
        if (mode.equals("sasl")) {
            props.setProperty(p + "auth.mechanisms", "PLAIN");
        }
        if (mode.equals("stls")) {
            props.setProperty(p + "starttls.enable", "true");
            props.setProperty(p + "starttls.required", "true");
        }
        if (!ca.isEmpty()) {
            props.put(p + "ssl.socketFactory", trusting(ca).getSocketFactory());
            props.setProperty(p + "ssl.checkserveridentity", "true");
        }

        Store store = Session.getInstance(props).getStore(protocol);
        store.connect(host, Integer.parseInt(port), user, password);
        Folder folder = store.getFolder("INBOX");
        folder.open(delete ? Folder.READ_WRITE : Folder.READ_ONLY);
        StringBuilder list = new StringBuilder(), uidl = new StringBuilder();
        for (Message message : folder.getMessages()) {
            int number = message.getMessageNumber();
            list.append(number).append(' ').append(message.getSize()).append('\n');
            uidl.append(number).append(' ').append(((POP3Folder) folder).getUID(message)).append('\n');
            try (OutputStream out = new FileOutputStream(outdir.resolve(number + ".eml").toFile())) {
                message.writeTo(out);
            }
            if (delete) {
                message.setFlag(Flags.Flag.DELETED, true);
            }
        }
        Files.writeString(outdir.resolve("list.txt"), list, StandardCharsets.UTF_8);
        Files.writeString(outdir.resolve("uidl.txt"), uidl, StandardCharsets.UTF_8);
        folder.close(delete);
        store.close();
    }

    /** An SSLContext that trusts only the CA certificate in PEM file {@code path}. */
    private static SSLContext trusting(String path) throws Exception {
        KeyStore keys = KeyStore.getInstance(KeyStore.getDefaultType());
        keys.load(null, null);
        try (InputStream in = new FileInputStream(path)) {
            Certificate cert = CertificateFactory.getInstance("X.509").generateCertificate(in);
            keys.setCertificateEntry("ca", cert);
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(keys);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trust.getTrustManagers(), null);
        return context;
    }
}
