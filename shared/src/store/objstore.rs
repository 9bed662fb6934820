//! Snapshot directories in object storage: `s3://BUCKET/PREFIX` (and `gs://`, `az://`), through
//! the `object_store` crate (SigV4 and the other stores' signing, retries, multipart uploads).
//!
//! The same guarantees as a local directory: a snapshot is uploaded only once it is complete
//! and verified (its sha256 and revision are object metadata, set when the multipart upload is
//! created), the multipart upload is completed only after every part was sent, and any failure
//! or signal aborts it, so no object ever stands under a final name half-written. Names are those
//! of a local directory (`PREFIX-<UTC time>-<revision>.db[.zst]`); retention counts only objects
//! whose metadata says this tool wrote and verified them.
//!
//! Credentials come from the environment by each store's conventions (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, web identity,
//! container and instance credentials; `GOOGLE_*`; `AZURE_*`), and for S3 from the AWS shared
//! files too (`AWS_PROFILE`, `~/.aws/credentials`, `~/.aws/config`: [`crate::store::awsconfig`]). They are never printed: errors name
//! the URL and the store's error code, never a header or a key.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMultipartOptions, PutPayload};

use crate::error::{Error, FailureClass, Result, TransportError};
pub use crate::store::bucket::{BucketUrl, ObjectMeta, Scheme};
use crate::store::compress::Compression;
use crate::store::snapdir::{Entry, Name};
use crate::store::trailer::Trailer;

/// Bytes per part: S3's floor is 5 MiB (all but the last part).
pub const PART: usize = 8 << 20;
/// Parts in flight at once: memory is bounded by `PART * IN_FLIGHT`.
pub const IN_FLIGHT: usize = 2;
/// How long an abort is retried after a failure (the store may be coming back).
const ABORT_FOR: Duration = Duration::from_secs(30);
/// Objects listed under one prefix at most.
const MAX_OBJECTS: usize = 100_000;

/// True while a multipart upload is open: a signal is then handled by the upload (which aborts
/// it) rather than by dropping the work in progress.
static UPLOADING: AtomicBool = AtomicBool::new(false);

/// Whether a multipart upload is open in this process.
pub fn uploading() -> bool {
    UPLOADING.load(Ordering::SeqCst)
}

/// Settings of the connection to a store (the credentials stay in the environment).
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// A PEM bundle of CAs to trust besides the system's (`--ca-file`).
    pub ca_file: Option<PathBuf>,
}

/// `-v`: [`Bucket::open`] says where credentials, region and endpoint came from (the region and
/// the endpoint, never a credential).
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Sets `-v` for every bucket this process opens.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::SeqCst);
}

/// An open bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Where.
    pub url: BucketUrl,
    store: Arc<dyn ObjectStore>,
}

fn client_options(opts: &StoreOptions, allow_http: bool) -> Result<object_store::ClientOptions> {
    let mut c = object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
        .with_allow_http(allow_http);
    if let Some(ca) = &opts.ca_file {
        let pem = crate::base::fsio::read_bounded(ca, "--ca-file", 1 << 20)?;
        let certs = object_store::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Usage(format!("--ca-file {}: not a PEM certificate bundle: {e}", ca.display())))?;
        for cert in certs {
            c = c.with_root_certificate(cert);
        }
    }
    Ok(c)
}

/// The environment's `AWS_*` settings that the shared files may also give: resolved by
/// [`crate::store::awsconfig`], not taken from the environment by `object_store`.
const RESOLVED_VARS: [&str; 8] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
];

/// An S3 client's settings: the environment's other `AWS_*` variables as `object_store` reads
/// them (web identity, container and instance credentials, …), then credentials, region and
/// endpoint as the AWS SDKs resolve them from the environment and the shared files
/// (`AWS_PROFILE`; [`crate::store::awsconfig`]).
fn s3_builder(
    url: &BucketUrl,
    opts: &StoreOptions,
    env: crate::store::awsconfig::Env,
) -> Result<object_store::aws::AmazonS3Builder> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let r = crate::store::awsconfig::resolve(env, &url.to_string())?;
    let mut b = AmazonS3Builder::new();
    // vars_os: a variable that is not UTF-8 is skipped, never a panic.
    for (k, v) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))) {
        if k.starts_with("AWS_") && !RESOLVED_VARS.contains(&k.as_str()) {
            if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                b = b.with_config(key, v);
            }
        }
    }
    let say = |what: &str, source: &str| {
        if VERBOSE.load(Ordering::SeqCst) {
            crate::base::messages::message(&format!("{url}: {what} from {source}"));
        }
    };
    match &r.credentials {
        Some(c) => {
            say("credentials", &c.source);
            b = b.with_access_key_id(&c.key_id.0).with_secret_access_key(&c.secret.0);
            if let Some(t) = &c.token {
                b = b.with_token(&t.0);
            }
        }
        None => match &r.web_identity {
            Some(w) => {
                say("a web identity", &format!("profile {}", r.profile));
                b = b
                    .with_config(AmazonS3ConfigKey::RoleArn, &w.role_arn)
                    .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, &w.token_file);
                if let Some(n) = &w.session_name {
                    b = b.with_config(AmazonS3ConfigKey::RoleSessionName, n);
                }
            }
            None => say("credentials", "object_store's chain (web identity, container or instance credentials)"),
        },
    }
    match &r.region {
        Some((region, source)) => {
            say(&format!("region {region}"), source);
            b = b.with_region(region);
        }
        None => b = b.with_region("us-east-1"),
    }
    let mut http = false;
    if let Some((endpoint, source)) = &r.endpoint {
        say(&format!("endpoint {endpoint}"), source);
        http = endpoint.starts_with("http://");
        if http {
            let what = if source.starts_with("AWS_") { source.clone() } else { format!("endpoint_url of {source}") };
            crate::base::messages::warning(&format!(
                "{what} is plain http://: the snapshots of {url} and the request signatures cross the network unencrypted"
            ));
        }
        b = b.with_endpoint(endpoint);
    }
    Ok(b.with_bucket_name(&url.bucket).with_client_options(client_options(opts, http)?).with_retry(retry()))
}

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        backoff: object_store::BackoffConfig::default(),
    }
}

impl Bucket {
    /// Opens `url` with the credentials of the environment. Nothing is sent yet.
    pub fn open(url: &BucketUrl, opts: &StoreOptions) -> Result<Bucket> {
        // reqwest's rustls takes the process's provider: the workspace's ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let conf = |e: object_store::Error| Error::ObjectStore {
            url: url.to_string(),
            reason: format!("cannot be configured: {}", one_line(&e)),
        };
        let store: Arc<dyn ObjectStore> = match url.scheme {
            Scheme::S3 => {
                Arc::new(s3_builder(url, opts, &crate::store::awsconfig::process_env)?.build().map_err(conf)?)
            }
            Scheme::Gcs => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&url.bucket)
                    .with_client_options(client_options(opts, false)?)
                    .with_retry(retry())
                    .build()
                    .map_err(conf)?,
            ),
            Scheme::Azure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&url.bucket)
                    .with_client_options(client_options(opts, false)?)
                    .with_retry(retry())
                    .build()
                    .map_err(conf)?,
            ),
        };
        Ok(Bucket { url: url.clone(), store })
    }

    fn path(&self, name: &str) -> ObjPath {
        ObjPath::from(self.url.key(name))
    }

    /// One request that proves the bucket exists and the credentials are accepted, before a
    /// snapshot is streamed for it.
    pub async fn check(&self) -> Result<()> {
        let prefix = (!self.url.prefix.is_empty()).then(|| ObjPath::from(self.url.prefix.as_str()));
        self.store.list_with_delimiter(prefix.as_ref()).await.map_err(|e| self.error("list", &e))?;
        Ok(())
    }

    /// Maps a store error to ours: one line naming the URL, never a credential.
    pub fn error(&self, doing: &str, e: &object_store::Error) -> Error {
        classify(&self.url.to_string(), doing, e)
    }

    /// Uploads the verified snapshot `file` as `name` with `meta`: a multipart upload of
    /// [`PART`]-sized parts, [`IN_FLIGHT`] at a time, completed only after every part was
    /// sent; aborted on any failure or signal (SIGINT, SIGTERM), so nothing stands under
    /// `name` unless all of it was stored.
    pub async fn upload(&self, file: &Path, name: &str, meta: &ObjectMeta) -> Result<String> {
        let location = self.path(name);
        let what = self.url.object_url(name);
        let mut src = std::fs::File::open(file).map_err(|source| Error::ReadFile {
            input: false,
            what: "snapshot",
            path: file.to_path_buf(),
            source,
        })?;
        let size = src.metadata().map(|m| m.len()).unwrap_or(0);
        let opts = PutMultipartOptions { attributes: meta.attributes(self.url.scheme), ..Default::default() };
        let _open = UploadingGuard::new();
        let started = std::time::Instant::now();
        let mut up =
            self.store.put_multipart_opts(&location, opts).await.map_err(|e| self.error("start an upload to", &e))?;
        let sent = async {
            let mut in_flight = FuturesUnordered::new();
            let mut done = 0u64;
            loop {
                if crate::base::signals::interrupted() {
                    return Err(Error::Interrupted(crate::base::signals::interrupting_signal().unwrap_or("a signal")));
                }
                let mut buf = vec![0u8; PART];
                let n = read_full(&mut src, &mut buf).map_err(|source| Error::ReadFile {
                    input: false,
                    what: "snapshot",
                    path: file.to_path_buf(),
                    source,
                })?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                done += n as u64;
                in_flight.push(up.put_part(PutPayload::from(buf)));
                while in_flight.len() >= IN_FLIGHT {
                    next_part(&mut in_flight).await.map_err(|e| self.error("upload a part to", &e))?;
                }
            }
            while !in_flight.is_empty() {
                next_part(&mut in_flight).await.map_err(|e| self.error("upload a part to", &e))?;
            }
            if done != size {
                return Err(Error::Internal(format!("read {done} of {size} bytes of {}", file.display())));
            }
            if crate::base::signals::interrupted() {
                return Err(Error::Interrupted(crate::base::signals::interrupting_signal().unwrap_or("a signal")));
            }
            let parts_sent = started.elapsed();
            up.complete().await.map_err(|e| self.error("complete the upload to", &e))?;
            if VERBOSE.load(Ordering::SeqCst) {
                crate::base::messages::message(&format!(
                    "{what}: {} in {} parts sent in {:.2}s; the store completed the upload in {:.2}s",
                    crate::base::units::format_bytes(size),
                    size.div_ceil(PART as u64).max(1),
                    parts_sent.as_secs_f64(),
                    (started.elapsed() - parts_sent).as_secs_f64()
                ));
            }
            Ok(())
        };
        let r: Result<()> = sent.await;
        match r {
            Ok(()) => Ok(what),
            Err(e) => {
                let aborted = abort(&mut *up).await;
                let state = match aborted {
                    Ok(()) => "the multipart upload was aborted: no object was written".to_string(),
                    Err(a) => format!(
                        "the multipart upload could not be aborted ({}): it holds no object under that name, and the bucket's AbortIncompleteMultipartUpload lifecycle rule (or `aws s3api list-multipart-uploads`) removes its parts",
                        one_line(&a)
                    ),
                };
                Err(match e {
                    Error::Interrupted(sig) => {
                        Error::Refused(format!("interrupted by {sig}: upload of {what} stopped; {state}"))
                    }
                    other => Error::Stopped {
                        what: "upload",
                        cause: Box::new(other),
                        done: format!("{state} ({what})"),
                        next: "check the store and its credentials, then save again".into(),
                    },
                })
            }
        }
    }

    /// The snapshots under the prefix (of `prefix` only, when given), newest first, from the
    /// listing and each object's metadata (one HEAD each; nothing downloaded).
    pub async fn list(&self, name_prefix: Option<&str>) -> Result<Vec<Entry>> {
        let prefix = (!self.url.prefix.is_empty()).then(|| ObjPath::from(self.url.prefix.as_str()));
        let listed = self.store.list_with_delimiter(prefix.as_ref()).await.map_err(|e| self.error("list", &e))?;
        if listed.objects.len() > MAX_OBJECTS {
            return Err(Error::TooLarge {
                what: format!("the listing of {}", self.url),
                limit: format!("{MAX_OBJECTS} objects"),
                why: "a snapshot prefix holds far fewer",
            });
        }
        let mut out = Vec::new();
        for o in listed.objects {
            let Some(file_name) = o.location.filename().map(str::to_string) else { continue };
            let Some(name) = Name::parse(&file_name) else { continue };
            if name_prefix.is_some_and(|p| p != name.prefix) {
                continue;
            }
            let head = self
                .store
                .get_opts(&o.location, object_store::GetOptions { head: true, ..Default::default() })
                .await
                .map_err(|e| self.error("read the metadata of", &e))?;
            let meta = ObjectMeta::from_attributes(&head.attributes);
            let compression = name.compression;
            out.push(Entry::remote(self.url.object_url(&file_name), file_name, &name, o.size, compression, meta));
        }
        crate::store::snapdir::sort_newest_first(&mut out);
        Ok(out)
    }

    /// Downloads `name` into `to` (from its start, truncated first), at most `bound` bytes.
    pub async fn download(&self, name: &str, to: &mut std::fs::File, bound: u64) -> Result<u64> {
        let got =
            self.store.get_opts(&self.path(name), Default::default()).await.map_err(|e| self.error("download", &e))?;
        if got.meta.size > bound {
            return Err(Error::TooLarge {
                what: self.url.object_url(name),
                limit: format!("{bound} bytes"),
                why: "its listed size",
            });
        }
        to.set_len(0)
            .and_then(|()| to.rewind())
            .map_err(|source| Error::Io { action: "truncate the download".into(), source })?;
        let mut stream = got.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("download", &e))?;
            n += chunk.len() as u64;
            if n > bound {
                return Err(Error::TooLarge {
                    what: self.url.object_url(name),
                    limit: format!("{bound} bytes"),
                    why: "its listed size",
                });
            }
            to.write_all(&chunk).map_err(|source| Error::Io { action: "write the download".into(), source })?;
        }
        to.flush().map_err(|source| Error::Io { action: "write the download".into(), source })?;
        Ok(n)
    }

    /// Deletes `name`.
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.store.delete(&self.path(name)).await.map_err(|e| self.error("delete from", &e))
    }
}

struct UploadingGuard;
impl UploadingGuard {
    fn new() -> UploadingGuard {
        UPLOADING.store(true, Ordering::SeqCst);
        UploadingGuard
    }
}
impl Drop for UploadingGuard {
    fn drop(&mut self) {
        UPLOADING.store(false, Ordering::SeqCst);
    }
}

async fn next_part(
    in_flight: &mut FuturesUnordered<object_store::UploadPart>,
) -> std::result::Result<(), object_store::Error> {
    match in_flight.next().await {
        Some(r) => r,
        None => Ok(()),
    }
}

/// Aborts, retrying for [`ABORT_FOR`] (a store that was cut off may be back).
async fn abort(up: &mut dyn object_store::MultipartUpload) -> std::result::Result<(), object_store::Error> {
    let until = std::time::Instant::now() + ABORT_FOR;
    loop {
        match up.abort().await {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= until => return Err(e),
            Err(_) => {
                crate::base::messages::message("the store does not answer: retrying to abort the multipart upload");
                tokio::time::sleep(Duration::from_secs(1)).await
            }
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An error's chain on one line (store errors carry the request URL, never a credential: the
/// signature travels in a header, which they do not print; an S3 error body is reduced to its
/// code).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    let s = parts.join(": ").replace('\n', " ");
    // An S3 error body: keep its <Code> only.
    match (s.find("<Code>"), s.find("</Code>")) {
        (Some(a), Some(b)) if b > a => {
            let code = &s[a + 6..b];
            let head = s.split("<?xml").next().unwrap_or("").trim_end_matches([' ', ':', ',']);
            format!("{head} ({code})")
        }
        _ => s,
    }
}

/// Configuration (3): no such bucket, access denied, wrong secret. Transport (4): the endpoint
/// does not answer.
fn classify(url: &str, doing: &str, e: &object_store::Error) -> Error {
    let text = one_line(e);
    let has = |w: &str| text.contains(w);
    let config =
        |why: &str| Error::ObjectStore { url: url.to_string(), reason: format!("{why} (while trying to {doing} it)") };
    if has("NoSuchBucket") || has("The specified bucket does not exist") || has("ContainerNotFound") {
        return config("the bucket does not exist: create it, or fix the URL");
    }
    if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("InvalidClientTokenId") {
        return config("the store rejected the credentials (access key unknown or secret wrong): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the AWS_PROFILE's keys");
    }
    if has("AccessDenied") || matches!(e, object_store::Error::PermissionDenied { .. }) || has("403 Forbidden") {
        return config("access denied: the credentials may not use this bucket/prefix (s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload)");
    }
    if matches!(e, object_store::Error::Unauthenticated { .. }) || has("401 Unauthorized") {
        return config("the store rejected the credentials: check them");
    }
    if has("error sending request")
        || has("onnection refused")
        || has("timed out")
        || has("dns error")
        || has("connect error")
    {
        return Error::Transport(TransportError {
            endpoint: url.to_string(),
            class: FailureClass::Network("the object store does not answer".into()),
            detail: format!("no answer while trying to {doing} it; check AWS_ENDPOINT_URL and the network"),
        });
    }
    if matches!(e, object_store::Error::NotFound { .. }) {
        return config("not found");
    }
    if has("credential") || has("Credential") {
        return config("no usable credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or the store's own)");
    }
    Error::Transport(TransportError {
        endpoint: url.to_string(),
        class: FailureClass::Network("object store error".into()),
        detail: format!("failed to {doing} it: {text}"),
    })
}

/// A snapshot downloaded into a nameless file (`O_TMPFILE`) in `dir`: gone when the process
/// ends, whatever ends it. [`Downloaded::path`] opens it by `/proc/self/fd/N`.
#[derive(Debug)]
pub struct Downloaded {
    file: std::fs::File,
    /// Where it came from.
    pub url: String,
}

impl Downloaded {
    /// The file's path for this process.
    pub fn path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// Keeps the file open for the rest of the process (the restore reads it by path).
    pub fn keep(self) -> PathBuf {
        let p = self.path();
        std::mem::forget(self.file);
        p
    }
}

/// A nameless file in `dir`, mode 0600.
pub fn nameless_file(dir: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io { action: format!("create a temporary file in {}", dir.display()), source };
    let tmpfile =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(dir);
    match tmpfile {
        Ok(f) => Ok(f),
        // A file system without O_TMPFILE: a named file, unlinked at once.
        Err(_) => {
            let p = dir.join(format!(".kubectl-etcd-download-{}", std::process::id()));
            let f =
                std::fs::OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&p).map_err(io)?;
            std::fs::remove_file(&p).map_err(io)?;
            Ok(f)
        }
    }
}

/// The newest snapshot of `bucket` that verifies (downloaded into a nameless file in `beside`,
/// then its trailer and structure checked), and the newer ones skipped, with why.
pub async fn latest(bucket: &Bucket, beside: &Path) -> Result<(Downloaded, Vec<String>)> {
    let mut skipped = Vec::new();
    let mut file = nameless_file(beside)?;
    for e in bucket.list(None).await? {
        if e.metadata.as_ref().is_some_and(|m| !m.verified) {
            skipped.push(format!("{}: not verified when uploaded", e.name));
            continue;
        }
        bucket.download(&e.name, &mut file, e.size).await?;
        let d = Downloaded { file, url: e.path.display().to_string() };
        let p = d.path();
        let v = tokio::task::spawn_blocking(move || crate::store::snapfile::verify(&p))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let wanted = e.metadata.as_ref().map(|m| m.sha256.clone());
        match v {
            Ok(v) if v.sha256_trailer == Trailer::Valid => {
                let _ = wanted;
                return Ok((d, skipped));
            }
            Ok(_) => skipped.push(format!("{}: no sha256 trailer", e.name)),
            Err(err) => skipped.push(format!("{}: {}", e.name, err.report())),
        }
        file = d.file;
    }
    Err(Error::Usage(format!(
        "no verified snapshot in {} (objects named PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db or .db.zst{}): pass a snapshot FILE instead",
        bucket.url,
        if skipped.is_empty() { String::new() } else { format!("; skipped {}", skipped.join("; ")) }
    )))
}

/// Keeps the newest `keep` verified snapshots of `prefix` under the bucket's prefix and deletes
/// the older verified ones; never an object of another prefix, one whose metadata does not say
/// this tool verified it, or one not named as ours.
pub async fn prune(bucket: &Bucket, prefix: &str, keep: usize, dry_run: bool) -> Result<crate::store::snapdir::Pruned> {
    crate::store::snapdir::check_prefix(prefix)?;
    crate::store::snapdir::check_keep(keep)?;
    let entries = bucket.list(Some(prefix)).await?;
    let (verified, unverified): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(Entry::verified);
    let (kept, removed) = crate::store::snapdir::retain(verified, keep);
    if !dry_run {
        for e in &removed {
            bucket.delete(&e.name).await?;
        }
    }
    Ok(crate::store::snapdir::Pruned {
        dir: PathBuf::from(bucket.url.to_string()),
        prefix: prefix.to_string(),
        keep,
        dry_run,
        kept,
        removed,
        unverified,
    })
}

/// Downloads each listed snapshot and checks its trailer (`ls --verify`).
pub async fn verify_entries(bucket: &Bucket, entries: &mut [Entry], scratch: &Path) -> Result<()> {
    let mut file = nameless_file(scratch)?;
    for e in entries.iter_mut() {
        bucket.download(&e.name, &mut file, e.size).await?;
        use std::os::fd::AsRawFd;
        let p = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let size = e.size;
        let t = tokio::task::spawn_blocking(move || crate::store::snapfile::check_trailer(&p, size))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        e.sha256_trailer = match t {
            Err(Error::Corrupt { .. }) => Trailer::Mismatch,
            r => r?,
        };
    }
    Ok(())
}

impl Compression {
    /// The metadata's word.
    pub fn meta_word(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_code_only() {
        let e = std::io::Error::other("Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><StringToSign>AWS4</StringToSign></Error>");
        let s = one_line(&e);
        assert!(s.ends_with("(SignatureDoesNotMatch)") && !s.contains("StringToSign"), "{s}");
    }
}
