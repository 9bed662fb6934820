//! A real Azure Blob Storage server for the tests: Azurite, Microsoft's own emulator of the
//! storage services (from npm, pinned by `scripts/azurite/package-lock.json` and installed by
//! `scripts/install-deps.sh` under `/opt/kubectl-etcd-deps/azurite`), started with an account
//! and key of its own so that every request's Shared Key signature is checked. Found through
//! `E2E_AZURITE` (its `azurite-blob`), else where install-deps puts it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

use crate::*;

/// Azurite's Blob service command.
pub fn azurite_blob() -> PathBuf {
    if let Some(p) = std::env::var_os("E2E_AZURITE") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/opt/kubectl-etcd-deps/azurite/node_modules/.bin/azurite-blob");
    assert!(p.is_file(), "Azurite is not installed: run scripts/install-deps.sh (or set E2E_AZURITE)");
    p
}

/// The API version of the requests this harness signs itself (creating a container).
const VERSION: &str = "2021-08-06";

/// A running Azurite Blob service on a loopback port, killed when dropped.
pub struct Azurite {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The account it serves.
    pub account: String,
    /// The account's key (base64), which it checks signatures with.
    pub key: String,
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts a server with a fresh store and its own account and key.
    pub fn start() -> Azurite {
        let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-azurite-").tempdir().unwrap();
        let port = free_port();
        let account = format!("kubectletcd{port}");
        let secret: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        let key = base64::engine::general_purpose::STANDARD.encode(secret);
        let mut cmd = Command::new(azurite_blob());
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.path())
            // object_store may speak a newer API version than this Azurite knows.
            .args(["--silent", "--skipApiVersionCheck"])
            .env("AZURITE_ACCOUNTS", format!("{account}:{key}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::process::dies_with_test(&mut cmd);
        let child = cmd.spawn().expect("cannot start azurite-blob");
        let addr = format!("127.0.0.1:{port}");
        wait_for("Azurite to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).ok()
        });
        Azurite { url: format!("http://{addr}"), account, key, port, child: Some(child), _dir: dir }
    }

    /// The environment a plugin reaches this server with: `object_store`'s emulator settings
    /// and this account's name and key.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.url.clone()),
            ("AZURE_STORAGE_ACCOUNT_NAME".into(), self.account.clone()),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), self.key.clone()),
        ]
    }

    /// Creates a container (Create Container, signed with the account's Shared Key).
    pub fn create_container(&self, name: &str) {
        let date = httpdate_now();
        let path = format!("/{}/{name}", self.account);
        // Shared Key: the verb, eleven empty standard headers, the x-ms- headers, and the
        // resource (the emulator's path-style URL carries the account once more).
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{}{path}\nrestype:container",
            self.account
        );
        let key = base64::engine::general_purpose::STANDARD.decode(&self.key).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), to_sign.as_bytes()));
        let req = format!(
            "PUT {path}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nx-ms-date: {date}\r\nx-ms-version: {VERSION}\r\nAuthorization: SharedKey {}:{sig}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port, self.account
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = s.take(64 << 10).read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 201"), "Create Container {name}: {answer}");
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The time now as an HTTP date (`Sun, 06 Dec 2026 10:00:00 GMT`).
fn httpdate_now() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now())
}
