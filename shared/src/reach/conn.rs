//! Connections to etcd members: one pinned client per member endpoint, dialed through our own
//! TCP + rustls connector so that every failure is classified (refused, timed out, which TLS
//! problem) and the member's serving certificate can be read.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::error::{FailureClass, TlsFailure, TransportError};
use crate::reach::tls::{CertInfo, TlsContext};
use crate::reach::url::EtcdUrl;

impl TransportError {
    pub(crate) fn new(endpoint: &str, class: FailureClass, detail: impl Into<String>) -> TransportError {
        TransportError { endpoint: endpoint.to_string(), class, detail: detail.into() }
    }

    /// Maps an RPC error to a transport error.
    pub fn rpc(endpoint: &str, e: etcd_client::Error) -> TransportError {
        let msg = match &e {
            etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
            other => other.to_string(),
        };
        TransportError::new(endpoint, FailureClass::Rpc(msg.clone()), msg)
    }

    /// A deadline passed while waiting for a member's answer.
    pub fn timed_out(endpoint: &str, what: &str, after: Duration) -> TransportError {
        TransportError::new(
            endpoint,
            FailureClass::TimedOut,
            format!(
                "no answer to {what} within {} (member frozen or overloaded)",
                crate::base::units::format_duration(after)
            ),
        )
    }
}

/// What a successful probe learned.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeInfo {
    /// The member's serving certificate (leaf).
    pub server_cert: Option<CertInfo>,
    /// Time to connect and complete the handshake.
    #[serde(rename = "handshake_ms", with = "crate::base::units::duration_ms")]
    pub handshake: Duration,
}

/// Where a plain-HTTP request goes: a URL dialed directly, or a port of a pod through a
/// port-forward tunnel (kubelet dials the pod's loopback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// TCP to this URL's host and port.
    Direct(EtcdUrl),
    /// A tunnel to `port` of pod `pod`.
    Pod {
        /// The pod.
        pod: String,
        /// The port in the pod.
        port: u16,
    },
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Direct(u) => write!(f, "{}://{}", if u.tls { "https" } else { "http" }, u.addr()),
            Via::Pod { pod, port } => write!(f, "pod {pod} port {port}"),
        }
    }
}

/// Dials members: TCP to their client URLs, or through port-forward tunnels
/// ([`Dialer::through`]).
#[derive(Debug, Clone)]
pub struct Dialer {
    tls: Option<TlsContext>,
    dial_timeout: Duration,
    tunnels: Option<std::sync::Arc<crate::reach::tunnel::Tunnels>>,
}

type BoxIo = Box<dyn IoStream>;
type TunnelError = futures::future::BoxFuture<'static, Option<String>>;

/// A member's client URL, or the transport failure of a URL that is none.
fn parse_target(url: &str) -> Result<EtcdUrl, TransportError> {
    EtcdUrl::parse(url).map_err(|e| {
        TransportError::new(
            url,
            FailureClass::Network("invalid URL".into()),
            format!("{e}; expected https://host:port"),
        )
    })
}

/// A tunnel to `port` of `pod`; any failure to open it is the member's transport failure.
async fn open_tunnel(
    t: &crate::reach::tunnel::Tunnels,
    label: &str,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> Result<crate::reach::tunnel::Opened, TransportError> {
    t.open(label, pod, port, timeout).await.map_err(|e| match e {
        crate::Error::Transport(e) => e,
        e => TransportError::new(label, FailureClass::Network("port-forward".into()), e.report()),
    })
}

/// A tunnel that closed during the handshake: kubelet says why on the port's error channel
/// (its dial to the member's port failed: the member is down), else the TLS failure stands.
async fn tunnel_failure(url: &str, error: TunnelError, tls: TransportError) -> TransportError {
    match tokio::time::timeout(Duration::from_millis(500), error).await {
        Ok(Some(msg)) if msg.contains("connection refused") => TransportError::new(
            url,
            FailureClass::ConnectionRefused,
            format!(
                "through the port-forward tunnel, nothing listens on the member's port: is etcd running? (kubelet: {})",
                msg.trim()
            ),
        ),
        Ok(Some(msg)) => TransportError::new(
            url,
            FailureClass::Network("port-forward".into()),
            format!("the port-forward tunnel failed: {}", msg.trim()),
        ),
        _ => tls,
    }
}
trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

impl Dialer {
    /// A dialer with the given TLS context (`None` for plain http).
    pub fn new(tls: Option<TlsContext>, dial_timeout: Duration) -> Dialer {
        Dialer { tls, dial_timeout, tunnels: None }
    }

    /// The same dialer reaching every member through port-forward tunnels.
    pub fn through(mut self, tunnels: crate::reach::tunnel::Tunnels) -> Dialer {
        self.tunnels = Some(std::sync::Arc::new(tunnels));
        self
    }

    /// The tunnels, when members are reached through them.
    pub fn tunnels(&self) -> Option<&crate::reach::tunnel::Tunnels> {
        self.tunnels.as_deref()
    }

    /// `GET path` over plain HTTP/1.0 (the server closes after one answer: no chunks, no
    /// keep-alive) to `via`, the whole exchange within `timeout`: the status code and the body.
    pub async fn http_get(&self, via: &Via, path: &str, timeout: Duration) -> Result<(u16, String), TransportError> {
        let label = via.to_string();
        let exchange = async {
            let (mut io, tunnel_error): (BoxIo, Option<TunnelError>) = match via {
                Via::Direct(u) => (self.connect_tcp(&label, u).await?, None),
                Via::Pod { pod, port } => {
                    let t = self.tunnels.as_ref().ok_or_else(|| {
                        TransportError::new(
                            &label,
                            FailureClass::Network("no tunnel".into()),
                            "no port-forward tunnels",
                        )
                    })?;
                    let o = open_tunnel(t, &label, pod, *port, self.dial_timeout).await?;
                    (Box::new(o.stream), o.error)
                }
            };
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: kubectl-etcd\r\nAccept: text/plain\r\n\r\n"
            );
            let io_err = |e: std::io::Error| classify_io(&label, &e);
            let mut body = Vec::new();
            let sent = async {
                io.write_all(req.as_bytes()).await?;
                io.flush().await?;
                (&mut io).take(crate::limits::MAX_METRICS_BODY as u64 + 1).read_to_end(&mut body).await
            }
            .await;
            match (sent, tunnel_error) {
                // Nothing came back through the tunnel: kubelet says why.
                (Ok(0), Some(err)) | (Err(_), Some(err)) => {
                    let none = TransportError::new(
                        &label,
                        FailureClass::Network("no HTTP answer".into()),
                        format!("GET {path}: the tunnel closed without an answer"),
                    );
                    Err(tunnel_failure(&label, err, none).await)
                }
                (Err(e), None) => Err(io_err(e)),
                _ => Ok(body),
            }
        };
        let raw = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(TransportError::timed_out(&label, &format!("GET {path}"), timeout)),
            Ok(r) => r?,
        };
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
            let why = if raw.is_empty() {
                "the connection closed without an answer (through a tunnel: nothing listens on that port in the pod)"
            } else {
                "not an HTTP answer"
            };
            TransportError::new(&label, FailureClass::Network("no HTTP answer".into()), format!("GET {path}: {why}"))
        })?;
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| {
            TransportError::new(&label, FailureClass::Network("bad HTTP".into()), format!("GET {path}: no status code"))
        })?;
        Ok((code, body.to_string()))
    }

    async fn connect_tcp(&self, url: &str, target: &EtcdUrl) -> Result<BoxIo, TransportError> {
        let tcp = match tokio::time::timeout(self.dial_timeout, TcpStream::connect(target.addr())).await {
            Err(_) => {
                return Err(TransportError::new(
                    url,
                    FailureClass::DialTimeout,
                    format!(
                        "TCP connect did not complete within {} (host down or filtered)",
                        crate::base::units::format_duration(self.dial_timeout)
                    ),
                ))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(TransportError::new(
                    url,
                    FailureClass::ConnectionRefused,
                    "nothing listens on this port: is etcd running?",
                ))
            }
            Ok(Err(e)) => return Err(TransportError::new(url, FailureClass::Network(e.to_string()), e.to_string())),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        Ok(Box::new(tcp))
    }

    /// The byte stream to `target`: a TCP connection, or a port-forward tunnel to its pod (with
    /// the future of kubelet's error message).
    async fn connect(&self, url: &str, target: &EtcdUrl) -> Result<(BoxIo, Option<TunnelError>), TransportError> {
        if let Some(t) = &self.tunnels {
            let Some((pod, port)) = t.resolve(target, self.dial_timeout).await else {
                return Err(TransportError::new(
                    url,
                    FailureClass::Network("no pod".into()),
                    format!(
                        "no etcd pod in namespace {} advertises this URL's host, so there is no port-forward to it: use --transport direct from a machine that reaches it",
                        t.namespace()
                    ),
                ));
            };
            let o = open_tunnel(t, url, &pod, port, self.dial_timeout).await?;
            return Ok((Box::new(o.stream), o.error));
        }
        Ok((self.connect_tcp(url, target).await?, None))
    }

    /// The TLS context.
    pub fn tls(&self) -> Option<&TlsContext> {
        self.tls.as_ref()
    }

    async fn dial(&self, url: &str) -> Result<(BoxIo, Option<CertInfo>), TransportError> {
        self.dial_alpn(url, true).await
    }

    /// `GET path` over HTTP/1.0 to a member's client URL (TLS as for gRPC, but without
    /// offering HTTP/2), the whole exchange within `timeout`: the status code and the body.
    /// etcd serves `/version` there (`{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}`).
    pub async fn client_url_get(
        &self,
        url: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), TransportError> {
        let exchange = async {
            let (mut io, _) = self.dial_alpn(url, false).await?;
            let req = format!("GET {path} HTTP/1.0\r\nHost: etcd\r\nUser-Agent: kubectl-etcd\r\n\r\n");
            let mut body = Vec::new();
            let r = async {
                io.write_all(req.as_bytes()).await?;
                io.flush().await?;
                (&mut io).take(crate::limits::MAX_METRICS_BODY as u64 + 1).read_to_end(&mut body).await
            }
            .await;
            // A TLS peer that closes without close_notify still gave its whole HTTP/1.0 answer.
            if let Err(e) = r {
                if body.is_empty() {
                    return Err(classify_io(url, &e));
                }
            }
            Ok(body)
        };
        let raw = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(TransportError::timed_out(url, &format!("GET {path}"), timeout)),
            Ok(r) => r?,
        };
        let text = String::from_utf8_lossy(&raw);
        let bad = |why: &str| {
            TransportError::new(url, FailureClass::Network("no HTTP answer".into()), format!("GET {path}: {why}"))
        };
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| bad("not an HTTP answer"))?;
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad("no status code"))?;
        Ok((code, body.to_string()))
    }

    async fn dial_alpn(&self, url: &str, h2: bool) -> Result<(BoxIo, Option<CertInfo>), TransportError> {
        let target = parse_target(url)?;
        let (io, tunnel_error) = self.connect(url, &target).await?;
        if !target.tls {
            return Ok((io, None));
        }
        let Some(tls) = &self.tls else {
            return Err(TransportError::new(
                url,
                FailureClass::Tls(TlsFailure::Other("no TLS material".into())),
                "https endpoint but no certificates: pass --cacert, --cert and --key",
            ));
        };
        let name: ServerName<'static> = TlsContext::server_name(&target.host).ok_or_else(|| {
            TransportError::new(
                url,
                FailureClass::Network("invalid host".into()),
                format!("{:?} is not a valid server name", target.host),
            )
        })?;
        let connector = if h2 {
            tokio_rustls::TlsConnector::from(tls.config.clone())
        } else {
            let mut c = (*tls.config).clone();
            c.alpn_protocols.clear();
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(c))
        };
        let stream = match tokio::time::timeout(self.dial_timeout, connector.connect(name, io)).await {
            Err(_) => {
                return Err(TransportError::new(
                    url,
                    FailureClass::TimedOut,
                    format!(
                        "connected, but the TLS handshake did not complete within {} (member frozen or overloaded)",
                        crate::base::units::format_duration(self.dial_timeout)
                    ),
                ))
            }
            Ok(Err(e)) => {
                if let Some(tunnel) = tunnel_error {
                    return Err(tunnel_failure(url, tunnel, classify_io(url, &e)).await);
                }
                return Err(self.recheck(&target, self.explain(classify_io(url, &e))).await);
            }
            Ok(Ok(s)) => s,
        };
        let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| CertInfo::from_der(c));
        Ok((Box::new(stream), cert))
    }

    /// A connection closed during the handshake reads like a rejected client certificate, and
    /// is one only if the member still listens: one that was killed meanwhile refuses the next
    /// connection, and is reported as down.
    async fn recheck(&self, target: &EtcdUrl, e: TransportError) -> TransportError {
        if !matches!(e.class, FailureClass::Tls(TlsFailure::ClientCertRejected))
            || e.detail.contains("alert")
            || self.tunnels.is_some()
        {
            return e;
        }
        let connect = tokio::time::timeout(self.dial_timeout, TcpStream::connect(target.addr())).await;
        match connect {
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => TransportError::new(
                &e.endpoint,
                FailureClass::ConnectionRefused,
                "the member went down while we connected (nothing listens on this port now): is etcd running?",
            ),
            _ => e,
        }
    }

    /// A rejected client certificate that is out of its validity period says so, with the
    /// dates: that, not the CA, is what to fix.
    fn explain(&self, mut e: TransportError) -> TransportError {
        let Some(c) = self.tls().and_then(|t| t.client_cert.as_ref()) else { return e };
        if !matches!(e.class, FailureClass::Tls(TlsFailure::ClientCertRejected)) {
            return e;
        }
        let now = crate::reach::tls::now_unix();
        let date = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_default()
        };
        if c.not_after < now {
            e.detail = format!(
                "our client certificate ({}) expired on {}: renew it (kubeadm: kubeadm certs renew etcd-healthcheck-client, or pass another with --cert/--key)",
                c.subject, c.not_after_rfc3339
            );
        } else if c.not_before > now {
            e.detail = format!(
                "our client certificate ({}) is not valid before {}: check this machine's clock",
                c.subject,
                date(c.not_before)
            );
        }
        e
    }

    /// Connects, completes the TLS handshake, and makes sure the server accepted our client
    /// certificate (with TLS 1.3 a rejection only shows after the handshake) by exchanging the
    /// HTTP/2 preface.
    pub async fn probe(&self, url: &str) -> Result<ProbeInfo, TransportError> {
        let start = Instant::now();
        let plain = EtcdUrl::parse(url).is_ok_and(|t| !t.tls);
        let (mut io, cert) = self.dial(url).await?;
        // HTTP/2 client preface and an empty SETTINGS frame; the server answers with its
        // SETTINGS, or with a TLS alert when it rejects our certificate.
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let exchange = async {
            io.write_all(&preface).await?;
            io.flush().await?;
            let mut buf = [0u8; 9];
            io.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        match tokio::time::timeout(self.dial_timeout, exchange).await {
            Err(_) => Err(TransportError::new(
                url,
                FailureClass::TimedOut,
                format!(
                    "connected, but no HTTP/2 answer within {} (member frozen or overloaded)",
                    crate::base::units::format_duration(self.dial_timeout)
                ),
            )),
            Ok(Err(e)) if plain => Err(TransportError::new(
                url,
                FailureClass::Tls(TlsFailure::TlsRequired),
                format!("the server closed the plain-text connection ({e}): if it serves TLS (etcd with --cert-file), use https://"),
            )),
            Ok(Err(e)) => match EtcdUrl::parse(url) {
                Ok(t) => Err(self.recheck(&t, self.explain(classify_io(url, &e))).await),
                Err(_) => Err(self.explain(classify_io(url, &e))),
            },
            Ok(Ok(buf)) if plain && buf.starts_with(b"HTTP/") => Err(TransportError::new(
                url,
                FailureClass::Tls(TlsFailure::TlsRequired),
                "the server speaks TLS on this port (it answered \"Client sent an HTTP request to an HTTPS server\"): use https://",
            )),
            Ok(Ok(buf)) if buf[3] != 0x04 => Err(TransportError::new(
                url,
                FailureClass::Network("not HTTP/2".into()),
                "the server did not answer with HTTP/2 SETTINGS: is this an etcd client port (2379), not the peer or metrics port?",
            )),
            Ok(Ok(_)) => Ok(ProbeInfo { server_cert: cert, handshake: start.elapsed() }),
        }
    }

    /// A client pinned to one endpoint. The connection is made on first use through this
    /// dialer, so TLS is verified exactly as in [`Dialer::probe`].
    pub async fn client(&self, url: &str) -> Result<etcd_client::Client, TransportError> {
        let target = parse_target(url)?;
        // tonic sees plain http; TLS is done by our connector.
        let uri = format!("http://{}", target.addr());
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| TransportError::new(url, FailureClass::Network(e.to_string()), e.to_string()))?
            .tcp_nodelay(true)
            // Large HTTP/2 windows: a snapshot stream is a gigabyte, not a few requests.
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(8 << 20));
        let dialer = self.clone();
        let url_owned = url.to_string();
        let connector = tower::service_fn(move |_uri: http::Uri| {
            let dialer = dialer.clone();
            let url = url_owned.clone();
            let fut: Pin<Box<dyn Future<Output = Result<TokioIo<BoxIo>, TransportError>> + Send>> =
                Box::pin(async move { dialer.dial(&url).await.map(|(io, _)| TokioIo::new(io)) });
            fut
        });
        // Each message etcd sends is decoded under tonic's default 4 MiB cap (see crate::limits).
        let channel = endpoint.connect_with_connector_lazy(connector);
        let client = etcd_client::Client::from_channel(etcd_client::Channel::Tonic(channel), None)
            .await
            .map_err(|e| TransportError::rpc(url, e))?;
        Ok(client)
    }
}

/// Classifies an I/O error from a TLS connection.
fn classify_io(url: &str, e: &std::io::Error) -> TransportError {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return classify_rustls(url, inner);
    }
    match e.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
            TransportError::new(
                url,
                FailureClass::Tls(TlsFailure::ClientCertRejected),
                format!("the server closed the connection during the TLS handshake ({e}); it most likely rejected our client certificate: check --cert/--key against the server's --trusted-ca-file"),
            )
        }
        _ => TransportError::new(url, FailureClass::Network(e.to_string()), e.to_string()),
    }
}

fn classify_rustls(url: &str, e: &rustls::Error) -> TransportError {
    use rustls::{AlertDescription as A, CertificateError as C};
    let (failure, detail) = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => (
                TlsFailure::UnknownAuthority,
                "the server's certificate is not signed by the CA in use: check --cacert (the etcd CA, /etc/kubernetes/pki/etcd/ca.crt on kubeadm)".to_string(),
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => (
                TlsFailure::NameMismatch,
                format!("the server's certificate is not valid for this host ({c:?}): use an endpoint named in its SANs, or reissue the certificate with this IP/name"),
            ),
            C::Expired | C::ExpiredContext { .. } => (
                TlsFailure::Expired,
                "the server's certificate has expired: renew it (kubeadm certs renew etcd-server)".to_string(),
            ),
            C::NotValidYet | C::NotValidYetContext { .. } => (
                TlsFailure::NotYetValid,
                "the server's certificate is not valid yet: check the clocks".to_string(),
            ),
            other => (TlsFailure::Other(format!("invalid server certificate: {other:?}")), format!("{other:?}")),
        },
        rustls::Error::AlertReceived(a) => match a {
            A::BadCertificate | A::UnknownCA | A::CertificateRequired | A::CertificateUnknown | A::UnsupportedCertificate | A::AccessDenied => (
                TlsFailure::ClientCertRejected,
                format!("the server rejected our client certificate (alert {a:?}): it must be signed by the server's --trusted-ca-file CA"),
            ),
            A::CertificateExpired => (
                TlsFailure::ClientCertRejected,
                "the server rejected our client certificate as expired: renew it".to_string(),
            ),
            other => (TlsFailure::Other(format!("alert {other:?}")), format!("the server sent TLS alert {other:?}")),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            TlsFailure::NotTls,
            "the server did not answer with TLS: is the endpoint http:// rather than https://?".to_string(),
        ),
        other => (TlsFailure::Other(other.to_string()), other.to_string()),
    };
    TransportError::new(url, FailureClass::Tls(failure), detail)
}

/// Runs one RPC against a member with a deadline; maps errors.
pub async fn call<T, F>(endpoint: &str, what: &str, deadline: Duration, fut: F) -> Result<T, TransportError>
where
    F: Future<Output = Result<T, etcd_client::Error>>,
{
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(TransportError::timed_out(endpoint, what, deadline)),
        Ok(Err(e)) => Err(TransportError::rpc(endpoint, e)),
        Ok(Ok(v)) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://10.0.0.1:2379";

    fn tls_class(e: rustls::Error) -> FailureClass {
        classify_rustls(URL, &e).class
    }

    #[test]
    fn server_certificate_failures_are_named() {
        use rustls::CertificateError as C;
        assert_eq!(
            tls_class(rustls::Error::InvalidCertificate(C::UnknownIssuer)),
            FailureClass::Tls(TlsFailure::UnknownAuthority)
        );
        assert_eq!(
            tls_class(rustls::Error::InvalidCertificate(C::BadSignature)),
            FailureClass::Tls(TlsFailure::UnknownAuthority)
        );
        assert_eq!(
            tls_class(rustls::Error::InvalidCertificate(C::NotValidForName)),
            FailureClass::Tls(TlsFailure::NameMismatch)
        );
        assert_eq!(tls_class(rustls::Error::InvalidCertificate(C::Expired)), FailureClass::Tls(TlsFailure::Expired));
        assert_eq!(
            tls_class(rustls::Error::InvalidCertificate(C::NotValidYet)),
            FailureClass::Tls(TlsFailure::NotYetValid)
        );
        let e = classify_rustls(URL, &rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(e.detail.contains("--cacert"), "{}", e.detail);
        assert_eq!(e.endpoint, URL);
    }

    #[test]
    fn a_rejected_client_certificate_and_a_plain_server_are_told_apart() {
        use rustls::AlertDescription as A;
        for a in [A::BadCertificate, A::UnknownCA, A::CertificateRequired, A::CertificateExpired] {
            assert_eq!(
                tls_class(rustls::Error::AlertReceived(a)),
                FailureClass::Tls(TlsFailure::ClientCertRejected),
                "{a:?}"
            );
        }
        assert!(matches!(
            tls_class(rustls::Error::AlertReceived(A::HandshakeFailure)),
            FailureClass::Tls(TlsFailure::Other(_))
        ));
        assert_eq!(
            tls_class(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)),
            FailureClass::Tls(TlsFailure::NotTls)
        );
    }

    #[test]
    fn io_errors_during_the_handshake() {
        // A server that drops the connection mid-handshake rejected our certificate (etcd with
        // client-cert-auth closes it); a rustls error inside an io::Error is unwrapped.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_io(URL, &reset).class, FailureClass::Tls(TlsFailure::ClientCertRejected));
        let wrapped = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert_eq!(classify_io(URL, &wrapped).class, FailureClass::Tls(TlsFailure::Expired));
        let other = std::io::Error::from(std::io::ErrorKind::HostUnreachable);
        assert!(matches!(classify_io(URL, &other).class, FailureClass::Network(_)));
    }

    #[tokio::test]
    async fn a_deadline_is_a_timeout_and_an_rpc_error_keeps_etcds_words() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), etcd_client::Error>(())
        };
        let e = call(URL, "status", Duration::from_millis(20), slow).await.unwrap_err();
        assert_eq!(e.class, FailureClass::TimedOut);
        assert!(e.detail.contains("no answer to status within"), "{}", e.detail);
        let refused = async {
            Err::<(), _>(etcd_client::Error::GRpcStatus(tonic::Status::failed_precondition(
                "etcdserver: can only promote a learner member which is in sync with leader",
            )))
        };
        let e = call(URL, "member promote", Duration::from_secs(1), refused).await.unwrap_err();
        assert_eq!(
            e.class,
            FailureClass::Rpc("etcdserver: can only promote a learner member which is in sync with leader".into())
        );
    }
}
