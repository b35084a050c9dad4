//! A private certificate authority for the TLS tests, made with the `openssl` command: the CA's
//! certificate (what a receiver's `ca_file` names) and a server certificate it signed for
//! `localhost` and 127.0.0.1, with its key. A missing `openssl` fails the test with how to
//! install it.

use std::path::PathBuf;
use std::process::Command;

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
