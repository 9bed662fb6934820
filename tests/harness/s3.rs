//! A real S3 server for the tests: `s3s-fs` (an S3 implementation over a local directory,
//! installed by scripts/install-deps.sh), started with an access key and secret so that every
//! request's SigV4 signature is checked. Found like etcd: `E2E_S3S_FS`, else `s3s-fs` on PATH,
//! else `$CARGO_HOME/bin/s3s-fs`, else `~/.cargo/bin/s3s-fs` (where install-deps puts it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::*;

/// The server's binary.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("E2E_S3S_FS") {
        return PathBuf::from(p);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).collect())
        .unwrap_or_default();
    // Where scripts/install-deps.sh's `cargo install` puts it: $CARGO_HOME/bin, else ~/.cargo/bin.
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(Path::new(&cargo_home).join("bin/s3s-fs"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/s3s-fs"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("s3s-fs is not installed: run scripts/install-deps.sh (or set E2E_S3S_FS)"))
}

/// A running `s3s-fs` on a loopback port, killed when dropped.
pub struct S3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The directory it serves (buckets are its subdirectories).
    pub root: PathBuf,
    /// The access key ID it accepts.
    pub access_key: String,
    /// The secret it checks signatures with.
    pub secret_key: String,
    port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl S3 {
    /// Starts a server with a fresh root and its own key pair.
    pub fn start() -> S3 {
        let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-s3-").tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let port = free_port();
        let mut s = S3 {
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
            access_key: format!("AKIATEST{port}"),
            secret_key: format!("secret-{port}-{}", std::process::id()),
            port,
            child: None,
            _dir: dir,
        };
        s.restart();
        s
    }

    /// The pid of the server process, while it runs (the benchmark reads its CPU time).
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Starts the server again (same port, root and keys) after [`S3::kill`].
    pub fn restart(&mut self) {
        let mut cmd = Command::new(s3s_fs());
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &self.access_key, "--secret-key", &self.secret_key])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::process::dies_with_test(&mut cmd);
        self.child = Some(cmd.spawn().expect("cannot start s3s-fs"));
        let addr = format!("127.0.0.1:{}", self.port);
        wait_for("s3s-fs to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).ok()
        });
    }

    /// Kills the server (SIGKILL): connections drop mid-request.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A bucket (a directory of the root, as s3s-fs keeps them).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).unwrap();
    }

    /// The environment a plugin reaches this server with (and nothing else of AWS's).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }

    /// The objects under `bucket/prefix` (names relative to the prefix), sorted.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let d = self.root.join(bucket).join(prefix);
        let mut v: Vec<String> = std::fs::read_dir(&d)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The multipart uploads the server holds open (s3s-fs 0.14 has no ListMultipartUploads:
    /// it records each open upload as `.upload-ID.json` and its parts as
    /// `.upload_id-ID.part-N` in its root, and removes them on complete and abort).
    pub fn open_uploads(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload-") || n.starts_with(".upload_id-"))
            .collect();
        v.sort();
        v
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}
