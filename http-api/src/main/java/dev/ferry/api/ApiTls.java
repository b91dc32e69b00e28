package dev.ferry.api;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.Collection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import org.apache.pekko.http.javadsl.ConnectionContext;
import org.apache.pekko.http.javadsl.HttpsConnectionContext;
import org.apache.pekko.pki.pem.DERPrivateKeyLoader;
import org.apache.pekko.pki.pem.PEMDecoder;

/**
 * TLS for the API from PEM files, as operators and {@code testbed.sh pki} make them: the server's
 * key and certificate (chain), and for clients (the CLI) the CA that signed it.
 */
public final class ApiTls {
  private ApiTls() {}

  /** The server side: {@code key} (PKCS#1 or PKCS#8) and {@code cert} (the chain, leaf first). */
  static HttpsConnectionContext server(String keyFile, String certFile) {
    try {
      PrivateKey key =
          DERPrivateKeyLoader.load(PEMDecoder.decode(Files.readString(Path.of(keyFile))));
      Certificate[] chain = certificates(certFile).toArray(Certificate[]::new);
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      ks.setKeyEntry("api", key, new char[0], chain);
      KeyManagerFactory kmf =
          KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
      kmf.init(ks, new char[0]);
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(kmf.getKeyManagers(), null, null);
      return ConnectionContext.httpsServer(ctx);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the API's TLS key or certificate", e);
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException(
          "the API's TLS key or certificate is not usable: " + e.getMessage(), e);
    }
  }

  /** A client context that trusts the certificates in {@code caFile} (PEM) and nothing else. */
  public static SSLContext trusting(Path caFile) {
    try {
      KeyStore ks = KeyStore.getInstance("PKCS12");
      ks.load(null, null);
      int n = 0;
      for (Certificate c : certificates(caFile.toString())) {
        ks.setCertificateEntry("ca-" + n++, c);
      }
      TrustManagerFactory tmf =
          TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
      tmf.init(ks);
      SSLContext ctx = SSLContext.getInstance("TLS");
      ctx.init(null, tmf.getTrustManagers(), null);
      return ctx;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read the CA file " + caFile, e);
    } catch (GeneralSecurityException e) {
      throw new IllegalArgumentException("the CA file " + caFile + " is not usable", e);
    }
  }

  private static Collection<? extends Certificate> certificates(String file)
      throws IOException, GeneralSecurityException {
    try (InputStream in = Files.newInputStream(Path.of(file))) {
      Collection<? extends Certificate> all =
          CertificateFactory.getInstance("X.509").generateCertificates(in);
      if (all.isEmpty()) {
        throw new GeneralSecurityException("no certificate in " + file);
      }
      return all;
    }
  }
}
