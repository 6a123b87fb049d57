// Java's own TLS client (JSSE) for the integration tests: one HttpsURLConnection GET with a
// client keystore and a truststore, limited to one TLS version. Run as a single-file program:
//   java JsseClient.java URL PROTOCOL TRUSTSTORE TRUSTPASS [KEYSTORE KEYPASS]
// Prints "status=<code> protocol=<version> suite=<cipher suite>" and exits 0, or prints the
// exception and exits 1.
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URL;
import java.security.KeyStore;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManagerFactory;

public class JsseClient {
    // Enables only the asked TLS version on every socket and remembers the last one, so the
    // version actually negotiated can be printed.
    static final class OneVersion extends SSLSocketFactory {
        final SSLSocketFactory inner;
        final String protocol;
        SSLSocket last;

        OneVersion(SSLSocketFactory inner, String protocol) {
            this.inner = inner;
            this.protocol = protocol;
        }

        Socket limit(Socket s) {
            SSLSocket ssl = (SSLSocket) s;
            ssl.setEnabledProtocols(new String[] {protocol});
            last = ssl;
            return ssl;
        }

        public String[] getDefaultCipherSuites() { return inner.getDefaultCipherSuites(); }
        public String[] getSupportedCipherSuites() { return inner.getSupportedCipherSuites(); }
        public Socket createSocket() throws java.io.IOException {
            return limit(inner.createSocket());
        }
        public Socket createSocket(Socket s, String h, int p, boolean c) throws java.io.IOException {
            return limit(inner.createSocket(s, h, p, c));
        }
        public Socket createSocket(String h, int p) throws java.io.IOException {
            return limit(inner.createSocket(h, p));
        }
        public Socket createSocket(String h, int p, InetAddress la, int lp)
            throws java.io.IOException {
            return limit(inner.createSocket(h, p, la, lp));
        }
        public Socket createSocket(InetAddress h, int p) throws java.io.IOException {
            return limit(inner.createSocket(h, p));
        }
        public Socket createSocket(InetAddress h, int p, InetAddress la, int lp)
            throws java.io.IOException {
            return limit(inner.createSocket(h, p, la, lp));
        }
    }

    // KeyStore.getInstance("PKCS12") reads JKS files too (keystore.type.compat), as Java does.
    static KeyStore load(String path, String pass) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, pass.toCharArray());
        }
        return ks;
    }

    public static void main(String[] args) throws Exception {
        try {
            TrustManagerFactory tmf =
                TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(load(args[2], args[3]));
            KeyManager[] kms = null;
            if (args.length > 5) {
                KeyManagerFactory kmf =
                    KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(load(args[4], args[5]), args[5].toCharArray());
                kms = kmf.getKeyManagers();
            }
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kms, tmf.getTrustManagers(), null);
            OneVersion f = new OneVersion(ctx.getSocketFactory(), args[1]);
            HttpsURLConnection c = (HttpsURLConnection) new URL(args[0]).openConnection();
            c.setSSLSocketFactory(f);
            c.setConnectTimeout(20000);
            c.setReadTimeout(20000);
            int status = c.getResponseCode();
            try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
                if (in != null)
                    in.readAllBytes();
            }
            System.out.println("status=" + status + " protocol=" + f.last.getSession().getProtocol()
                               + " suite=" + f.last.getSession().getCipherSuite());
            c.disconnect();
        } catch (Exception e) {
            System.out.println("failed: " + e);
            System.exit(1);
        }
    }
}
