//! A private certificate authority for the TLS tests, made with the `openssl` command: the CA's
//! certificate (what a receiver's `ca_file` names) and a server certificate it signed for
//! `localhost` and 127.0.0.1, with its key. A missing `openssl` fails the test with how to
//! install it. Also [`TlsListener`], which makes a test server's axum listener speak HTTPS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub struct TestCa {
    /// The CA's certificate, PEM.
    pub ca: PathBuf,
    /// The server's certificate, PEM, signed by the CA.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8).
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

/// A new P-256 key, unencrypted.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS tests make their certificates with `openssl` ({e}): install it with \
             `apt-get install openssl` (scripts/test does it)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |name: &str| dir.path().join(name).display().to_string();
        let (ca, ca_key, cert, key, csr, ext) = (
            p("ca.pem"),
            p("ca.key"),
            p("server.pem"),
            p("server.key"),
            p("server.csr"),
            p("server.ext"),
        );
        std::fs::write(
            &ext,
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .expect("write server.ext");
        let self_signed_ca = [
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=logward test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ];
        openssl(&[&self_signed_ca[..], &NEW_KEY[..]].concat());
        let request = [
            "req",
            "-new",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        openssl(&[&request[..], &NEW_KEY[..]].concat());
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            "1",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
        TestCa {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            _dir: dir,
        }
    }
}

/// HTTPS on a TCP listener: the handshake of each connection, with the server's certificate;
/// a client that fails it (a certificate it does not trust) is dropped.
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    /// Serves `tcp` with the PEM certificate chain `cert` and its key `key` (rustls with the
    /// agent's crypto provider, aws-lc-rs).
    pub fn new(tcp: tokio::net::TcpListener, cert: &Path, key: &Path) -> TlsListener {
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
