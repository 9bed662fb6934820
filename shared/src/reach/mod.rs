//! Finding and talking to members: URLs, TLS, discovery (manifests, kubeconfig, the API),
//! tunnels through the API server, connections, metrics, the session over a cluster and the
//! one quorum probe. Imports nothing from `ops` or `cli`.

pub mod cluster;
pub mod conn;
pub mod discovery;
pub mod kube;
pub mod layouts;
pub mod metrics;
pub mod quorum;
pub mod status;
pub mod tls;
pub mod tunnel;
pub mod url;
