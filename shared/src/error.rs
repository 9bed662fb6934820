//! The one error type of the core crate, and the exit codes every plugin uses.

use std::path::PathBuf;

use serde::Serialize;

/// The class of a failure to talk to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "class", content = "reason")]
pub enum FailureClass {
    /// Nothing listens on the port (the member is down).
    ConnectionRefused,
    /// The TCP connection did not complete within the dial timeout (host down, firewall).
    DialTimeout,
    /// Connected, but no answer within the deadline: the process is frozen or overloaded.
    TimedOut,
    /// The TLS handshake failed, for the reason given.
    Tls(TlsFailure),
    /// The member answered the RPC with an error.
    Rpc(String),
    /// The member has no client URL: it was added but never started.
    NoClientUrl,
    /// Any other network failure (no route, DNS).
    Network(String),
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFailure {
    /// The server's certificate is not signed by the CA we trust.
    UnknownAuthority,
    /// The server's certificate does not name the host we dialed (no matching SAN).
    NameMismatch,
    /// The server rejected our client certificate.
    ClientCertRejected,
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server does not speak TLS on this port.
    NotTls,
    /// The endpoint is `http://`, but the server speaks TLS on this port.
    TlsRequired,
    /// Anything else, with rustls' words.
    Other(String),
}

impl FailureClass {
    /// A short phrase for tables: `connection refused`, `timed out`, `tls: unknown authority`.
    pub fn short(&self) -> String {
        match self {
            FailureClass::ConnectionRefused => "connection refused".into(),
            FailureClass::DialTimeout => "dial timed out".into(),
            FailureClass::TimedOut => "timed out".into(),
            FailureClass::Tls(t) => format!("tls: {}", t.short()),
            FailureClass::Rpc(m) => format!("rpc error: {m}"),
            FailureClass::NoClientUrl => "no client URL (never started)".into(),
            FailureClass::Network(m) => m.clone(),
        }
    }
}

impl TlsFailure {
    fn short(&self) -> String {
        match self {
            TlsFailure::UnknownAuthority => "certificate signed by unknown authority".into(),
            TlsFailure::NameMismatch => "certificate name mismatch".into(),
            TlsFailure::ClientCertRejected => "client certificate rejected".into(),
            TlsFailure::Expired => "certificate expired".into(),
            TlsFailure::NotYetValid => "certificate not valid yet".into(),
            TlsFailure::NotTls => "server does not speak TLS".into(),
            TlsFailure::TlsRequired => "server requires TLS (use https://)".into(),
            TlsFailure::Other(m) => m.clone(),
        }
    }
}

/// A failure to talk to one member.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{endpoint}: {}", self.text())]
pub struct TransportError {
    /// The endpoint dialed.
    pub endpoint: String,
    /// The class of failure.
    #[serde(flatten)]
    pub class: FailureClass,
    /// What happened, with the next step where there is one.
    pub detail: String,
}

impl TransportError {
    /// The class and the detail, the detail left out when it only repeats etcd's message.
    fn text(&self) -> String {
        match &self.class {
            FailureClass::Rpc(m) if m == &self.detail => self.class.short(),
            c => format!("{}: {}", c.short(), self.detail),
        }
    }
}

/// Process exit codes shared by every `kubectl-etcd-*` binary.
///
/// Scripts rely on these numbers; never renumber them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything ran and the result is positive.
    Ok = 0,
    /// The command ran, but the result is negative (unhealthy, refused by a safety check).
    Negative = 1,
    /// Usage error or bad input (flags, files given by the user).
    Usage = 2,
    /// Discovery or configuration failure: no etcd found, certificates missing or unreadable.
    Discovery = 3,
    /// Transport failure: dial, TLS or RPC error talking to etcd.
    Transport = 4,
}

/// Errors of the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag or argument combination is invalid.
    #[error("{0}")]
    Usage(String),

    /// The Kubernetes API refused a request (RBAC): what was refused, the API's words, and
    /// what to grant.
    #[error("the Kubernetes API refused {what}: {message}; {}", rbac_hint_for(message))]
    Forbidden {
        /// What was asked (for example "a port-forward to pod kube-system/etcd-cp-1 port 2379").
        what: String,
        /// The API server's message (it names the user, verb and resource).
        message: String,
    },

    /// A file named by the user or by discovery could not be read.
    #[error("failed to read {what} {path}")]
    ReadFile {
        /// What the file is (for example "static pod manifest").
        what: &'static str,
        /// The path that was tried.
        path: PathBuf,
        /// An input the user named for the operation (a snapshot: exit 2), rather than a file
        /// discovery relies on (a manifest, a certificate: exit 3).
        input: bool,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The static pod manifest is not a valid Pod document.
    #[error("failed to parse static pod manifest {path}: {reason}; expected a Pod in YAML, such as kubeadm's /etc/kubernetes/manifests/etcd.yaml")]
    ManifestParse {
        /// The manifest path.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },

    /// The static pod manifest has no etcd container.
    #[error("static pod manifest {path} has no etcd container (looked for a container named \"etcd\" or running the etcd binary); pass --endpoints and certificates instead")]
    ManifestNoEtcd {
        /// The manifest path.
        path: PathBuf,
    },

    /// A PEM file does not hold what it should.
    #[error("failed to load {what} from {path}: {reason}")]
    Pem {
        /// What was expected (for example "CA certificate").
        what: &'static str,
        /// The path that was read.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// A configuration value is invalid (for example a URL or a timeout).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// Which setting.
        what: String,
        /// The offending value.
        value: String,
        /// Why it is invalid and what to do.
        reason: String,
    },

    /// Nothing could be discovered; the message lists every place that was tried.
    #[error("failed to find etcd: {}; pass --endpoints with --cacert, --cert and --key, or --manifest PATH", tried.join("; "))]
    NothingFound {
        /// One line per source that was tried and why it gave nothing.
        tried: Vec<String>,
    },

    /// No etcd log was found; the message lists every place that was looked at.
    #[error("no etcd log found: looked at {}; pass --log-file FILE (or - for stdin) or --pod-log-dir DIR", tried.join("; "))]
    NoLog {
        /// Where logs were looked for.
        tried: Vec<String>,
    },

    /// Endpoints were found but no client certificate for them.
    #[error("found etcd endpoints ({endpoints}) but no TLS client certificate: {}; pass --cacert, --cert and --key", tried.join("; "))]
    NoCredentials {
        /// The endpoints that were found.
        endpoints: String,
        /// Where certificates were looked for.
        tried: Vec<String>,
    },

    /// The Kubernetes API could not be used.
    #[error("failed to {action} through the Kubernetes API")]
    Kube {
        /// What was being done.
        action: String,
        /// The kube client error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// No member of the cluster answered.
    #[error("failed to reach any etcd member: {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Unreachable {
        /// The per-endpoint failures.
        errors: Vec<TransportError>,
    },

    /// One member could not be reached or answered with an error.
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// A peer sent more than a bound allows (an endless or oversized API answer, a member list
    /// or a Snapshot stream past its size): what sent it, the bound, and why it is that.
    #[error("{what} went past {limit}, {why}; stopped reading")]
    TooLarge {
        /// What sent too much (`the Kubernetes API's answer to list etcd pods …`).
        what: String,
        /// The bound, with its unit.
        limit: String,
        /// Why the bound is what it is.
        why: &'static str,
    },

    /// A command was stopped by a signal it caught (SIGINT, SIGTERM, SIGHUP) before it had
    /// anything to say: the process exits 128 + the signal's number, silently.
    #[error("interrupted by {0}")]
    Interrupted(&'static str),

    /// A directory given as an etcd data dir is not one.
    #[error("{} is not an etcd data dir: {reason}", path.display())]
    NotDataDir {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },

    /// A file is not a sound etcd database or snapshot.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first problem found.
        reason: String,
    },

    /// A safety check refused the operation.
    #[error("{0}")]
    Refused(String),

    /// An operation of several steps stopped part way: why, what was done (or undone), and
    /// what to do next. Exits with the cause's code (a transport failure stays 4).
    #[error("{what} stopped: {}; {done}; next: {next}", cause.report())]
    Stopped {
        /// The operation (`replace`, `restore node`).
        what: &'static str,
        /// Why it stopped.
        cause: Box<Error>,
        /// What was done so far, or rolled back, as one phrase.
        done: String,
        /// The next step for the operator.
        next: String,
    },

    /// An object store (a bucket URL given as a snapshot directory) refused or cannot be
    /// configured: no such bucket, access denied, credentials rejected. Never names a secret.
    #[error("{url}: {reason}")]
    ObjectStore {
        /// The bucket URL.
        url: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A bug: a task panicked or was cancelled.
    #[error("internal error: {0} (a bug: please report it with the command that caused it)")]
    Internal(String),

    /// Writing output failed.
    #[error("failed to write output")]
    Output(#[source] std::io::Error),

    /// Any other I/O failure with context.
    #[error("failed to {action}")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::InvalidValue { .. } | Error::ReadFile { input: true, .. } => ExitCode::Usage,
            Error::ReadFile { input: false, .. }
            | Error::ManifestParse { .. }
            | Error::ManifestNoEtcd { .. }
            | Error::Pem { .. }
            | Error::NothingFound { .. }
            | Error::NoLog { .. }
            | Error::NoCredentials { .. }
            | Error::NotDataDir { .. }
            | Error::Forbidden { .. }
            | Error::Kube { .. }
            | Error::ObjectStore { .. } => ExitCode::Discovery,
            Error::Unreachable { .. } | Error::Transport(_) | Error::TooLarge { .. } => ExitCode::Transport,
            Error::Refused(_) | Error::Corrupt { .. } => ExitCode::Negative,
            Error::Stopped { cause, .. } => cause.exit_code(),
            Error::Output(_) | Error::Io { .. } | Error::Internal(_) | Error::Interrupted(_) => ExitCode::Negative,
        }
    }

    /// The message with its causes, each once: `failed to read snapshot x.db: No such file or
    /// directory (os error 2)`. Variants print their own words; the cause comes from `source()`.
    pub fn report(&self) -> String {
        let mut s = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !s.contains(&text) {
                s.push_str(": ");
                s.push_str(&text);
            }
            cause = c.source();
        }
        s
    }

    /// A blocking task that panicked or was cancelled (not a usage error).
    pub fn from_join(e: tokio::task::JoinError) -> Error {
        Error::Internal(e.to_string())
    }

    /// True when the error is a closed stdout pipe, which must exit quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to grant so that `kubectl etcd` can tunnel: `list` on pods and `create`/`get` on
/// `pods/portforward` in the etcd pods' namespace.
pub fn rbac_hint(namespace: &str) -> String {
    format!(
        "grant list on pods and create,get on pods/portforward in namespace {namespace} (kubectl etcd health --print-rbac User:NAME prints a Role and RoleBinding), or run on a control-plane node"
    )
}

/// [`rbac_hint`] for the namespace the API server's refusal names (`in the namespace "x"`),
/// else kube-system; for a refused `pods/log`, what `doctor logs` needs.
pub fn rbac_hint_for(message: &str) -> String {
    let ns = message.split("in the namespace \"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("kube-system");
    if message.contains("resource \"pods/log\"") {
        return format!(
            "grant get on pods/log in namespace {ns} (kubectl etcd health --print-rbac User:NAME prints a Role and RoleBinding), or run on a control-plane node"
        );
    }
    rbac_hint(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(input: bool) -> Error {
        Error::ReadFile {
            what: "snapshot",
            path: "/x.db".into(),
            input,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
    }

    #[test]
    fn the_cause_is_printed_once_and_a_wrapped_failure_keeps_its_exit_code() {
        assert_eq!(missing(true).to_string(), "failed to read snapshot /x.db");
        assert_eq!(missing(true).report(), "failed to read snapshot /x.db: entity not found");
        assert_eq!(missing(true).exit_code(), ExitCode::Usage);
        assert_eq!(missing(false).exit_code(), ExitCode::Discovery);
        let stopped = Error::Stopped {
            what: "replace",
            cause: Box::new(missing(false)),
            done: "done so far: nothing".into(),
            next: "run it again".into(),
        };
        assert_eq!(
            stopped.report(),
            "replace stopped: failed to read snapshot /x.db: entity not found; done so far: nothing; next: run it again"
        );
        assert_eq!(stopped.exit_code(), ExitCode::Discovery);
    }
}
