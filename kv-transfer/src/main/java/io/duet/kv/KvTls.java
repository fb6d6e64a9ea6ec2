package io.duet.kv;

import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.core.net.PemTrustOptions;
import java.nio.file.Path;

/**
 * TLS on the KV channel, from PEM files. A prefill instance's KV server presents {@code cert}
 * (with its private key {@code key}); a decode instance accepts a server whose certificate
 * chains to {@code trust} and names the host it connected to (the host the prefill instance
 * announces, e.g. an IP SAN of 127.0.0.1), as HTTPS checks it.
 *
 * @param cert the server's certificate chain (PEM)
 * @param key the server's private key (PEM, PKCS#8 or PKCS#1)
 * @param trust the certificates a client trusts (PEM): a CA's, or a self-signed {@code cert}
 */
public record KvTls(Path cert, Path key, Path trust) {

  NetServerOptions applyTo(NetServerOptions options) {
    return options.setSsl(true).setKeyCertOptions(new PemKeyCertOptions()
        .setCertPath(cert.toString()).setKeyPath(key.toString()));
  }

  NetClientOptions applyTo(NetClientOptions options) {
    return options.setSsl(true).setHostnameVerificationAlgorithm("HTTPS")
        .setTrustOptions(new PemTrustOptions().addCertPath(trust.toString()));
  }
}
