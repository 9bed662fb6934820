//! Bounds on what is read from the network, each with its source: a peer that sends without
//! end (a broken or hostile API server, a confused member) costs at most these, never the
//! machine's memory or disk.
//!
//! - One Kubernetes API response body: [`MAX_API_BODY`]; one list's items: [`MAX_LIST_ITEMS`];
//!   one container's log through `pods/log`: [`MAX_POD_LOG`].
//! - One etcd member list: [`MAX_MEMBERS`].
//! - One gRPC message from etcd: tonic's default decode limit, 4 MiB
//!   (`DEFAULT_MAX_RECV_MESSAGE_SIZE` in tonic 0.14's `codec/mod.rs`; etcd-client 0.21 keeps it:
//!   it only offers to change it on the KV and Watch clients, which we leave alone). etcd's own
//!   answers to what we ask are far smaller: a member list of a few members, and Snapshot chunks
//!   of 32 KiB (`snapshotSendBufferSize` in etcd's `v3rpc/maintenance.go`).
//! - A Snapshot stream: the size etcd announces in its first message
//!   ([`SnapshotStream`]).
//! - A plain-HTTP metrics answer: [`crate::reach::metrics::MAX_BODY`].

use crate::error::Error;

/// The most bytes of one Kubernetes API response body (success or error) we read: 16 MiB.
///
/// client-go reads a body whole (`rest.Request.transformResponse`, `io.ReadAll`) and bounds
/// only the text it quotes from an unstructured error (`maxUnstructuredResponseTextBytes` =
/// 2048 in `k8s.io/client-go/rest/request.go`); kubectl bounds lists by paging them, 500 items
/// a page (`--chunk-size`, `k8s.io/kubectl/pkg/cmd/get`). We list a handful of etcd pods or
/// nodes and get one object at a time. One object is at most 1.5 MiB (etcd's default
/// `--max-request-bytes`, which the API server's objects are stored under) and a kubeadm etcd
/// pod is ~10 KiB: 16 MiB is ten objects of the largest size etcd stores, or over a thousand
/// etcd pods, and it keeps an endless answer to tens of megabytes of memory.
pub const MAX_API_BODY: usize = 16 << 20;

/// The most bytes of one container's log we read through the API's `pods/log`: 12 MiB, asked
/// as `limitBytes` (kubelet cuts its answer there, `kuberuntime/logs` `logWriter`) and read no
/// further. kubelet serves only the container's live log file, which it rotates past
/// `--container-log-max-size` (default 10Mi, `KubeletConfiguration.containerLogMaxSize`), so
/// this is a whole live file; it stays under [`MAX_API_BODY`].
pub const MAX_POD_LOG: usize = 12 << 20;

/// The most items of one Kubernetes API list we take (and the `limit` we ask for: a real API
/// server pages beyond it, as it does for kubectl's `--chunk-size`). We list the etcd pods
/// (one per member) or the etcd nodes: [`MAX_MEMBERS`] bounds both. Decoded, an item costs a
/// few kilobytes even when its JSON is `{}`, so the count is bounded as well as the bytes.
pub const MAX_LIST_ITEMS: usize = MAX_MEMBERS;

/// The most members of one etcd member list we act on: 128.
///
/// etcd recommends at most 7 voting members ("What is maximum cluster size?" in etcd's FAQ,
/// <https://etcd.io/docs/v3.5/faq/>: more slows every write), and allows 1 learner by default
/// (`--experimental-max-learners`, etcd 3.5). 128 is over ten times a real cluster, and keeps
/// a confused or hostile answer from costing one status RPC, one connection and one table row
/// per listed member (40,001 members cost 1.1 GB before this bound).
pub const MAX_MEMBERS: usize = 128;

/// Refuses a member list of more than [`MAX_MEMBERS`] members from `endpoint`.
pub fn check_members(endpoint: &str, n: usize) -> Result<(), crate::error::TransportError> {
    if n <= MAX_MEMBERS {
        return Ok(());
    }
    Err(crate::error::TransportError::new(
        endpoint,
        crate::error::FailureClass::Network("too many members".into()),
        format!(
            "the member list has {n} members, more than {MAX_MEMBERS} (kubectl-etcd's bound: etcd recommends at most 7 voters and 1 learner); not an etcd cluster we can act on: check the endpoint"
        ),
    ))
}

/// Whether `e` (or an error it wraps) is the body cap of [`MAX_API_BODY`] being hit.
pub fn is_body_cap(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The error of a Kubernetes API answer to `action` (`list etcd pods in namespace …`) that
/// went past [`MAX_API_BODY`].
pub fn api_body_too_large(action: &str) -> Error {
    Error::TooLarge {
        what: format!("the Kubernetes API's answer to {action}"),
        limit: format!("{} bytes ({})", MAX_API_BODY, crate::base::units::format_bytes(MAX_API_BODY as u64)),
        why: "the cap on one API response body: etcd pods and nodes take kilobytes",
    }
}

/// The error of a Kubernetes API list for `action` with `n` items, more than [`MAX_LIST_ITEMS`].
pub fn api_list_too_long(action: &str, n: usize) -> Error {
    Error::TooLarge {
        what: format!("the Kubernetes API's answer to {action} ({n} items)"),
        limit: format!("{MAX_LIST_ITEMS} items"),
        why: "one etcd pod or node per member, and a cluster has a handful",
    }
}

/// Where a Snapshot stream stands against the size etcd announced.
///
/// etcd's Maintenance.Snapshot sends the database in chunks, each with `remaining_bytes`, the
/// bytes still to come after it (`total - sent`), then the database's sha256 (32 bytes) with
/// `remaining_bytes` 0 (`v3rpc/maintenance.go`, etcd 3.4 and 3.5): the first message announces
/// the total. A stream that goes past the total plus the checksum is refused at once, before
/// its bytes reach the disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnapshotStream {
    /// The announced database size, once the first message came.
    announced: Option<u64>,
    /// Bytes received so far.
    received: u64,
}

/// The sha256 etcd sends after the database.
const CHECKSUM: u64 = 32;

impl SnapshotStream {
    /// A stream before its first message.
    pub fn new() -> SnapshotStream {
        SnapshotStream::default()
    }

    /// The announced database size (0 before the first message).
    pub fn total(&self) -> u64 {
        self.announced.unwrap_or(0)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Takes one message of `len` bytes announcing `remaining` more: `Err` (the reason, naming
    /// the bound) when it would go past what the first message announced.
    pub fn accept(&mut self, len: u64, remaining: u64) -> Result<(), String> {
        let total = *self.announced.get_or_insert(len.saturating_add(remaining));
        let after = self.received.saturating_add(len);
        let bound = total.saturating_add(CHECKSUM);
        if after > bound {
            return Err(format!(
                "the member sent {after} bytes, more than the {total} it announced plus the {CHECKSUM}-byte sha256 ({bound} bytes, the bound of a Snapshot stream); stopped reading"
            ));
        }
        if after <= total && after.saturating_add(remaining) != total {
            return Err(format!(
                "the member announced {total} bytes, then {} after {after} bytes; stopped reading",
                after.saturating_add(remaining)
            ));
        }
        self.received = after;
        Ok(())
    }
}

/// The most of one AWS shared config or credentials file read (`~/.aws/config`,
/// `~/.aws/credentials`): 1 MiB. They are a few hundred bytes per profile; the AWS SDKs bound
/// nothing, so this is ours: thousands of profiles, and no more memory than a certificate.
pub const MAX_AWS_CONFIG: u64 = 1 << 20;

/// The most of one `/metrics` body read (etcd's is about 150 KiB).
pub const MAX_METRICS_BODY: usize = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_stream_as_etcd_sends_it_is_taken_whole() {
        let mut s = SnapshotStream::new();
        // 100 bytes in chunks of 40, 40, 20, then the checksum.
        assert_eq!(s.accept(40, 60), Ok(()));
        assert_eq!(s.total(), 100);
        assert_eq!(s.accept(40, 20), Ok(()));
        assert_eq!(s.accept(20, 0), Ok(()));
        assert_eq!(s.accept(32, 0), Ok(()));
        assert_eq!(s.received(), 132);
    }

    #[test]
    fn a_snapshot_stream_past_its_announced_size_is_stopped() {
        let mut s = SnapshotStream::new();
        assert_eq!(s.accept(40, 60), Ok(()));
        assert_eq!(s.accept(60, 0), Ok(()));
        assert_eq!(s.accept(32, 0), Ok(()));
        // One byte more than the database and its checksum: refused, naming the bound.
        let e = s.accept(1, 0).unwrap_err();
        assert!(e.contains("133 bytes, more than the 100 it announced") && e.contains("132 bytes"), "{e}");
        assert_eq!(s.received(), 132, "the refused bytes are not counted");
        // A stream that keeps announcing "0 remaining" after an empty first message.
        let mut s = SnapshotStream::new();
        assert_eq!(s.accept(0, 0), Ok(()));
        assert_eq!(s.accept(32, 0), Ok(()));
        assert!(s.accept(32 * 1024, 0).is_err());
        // A chunk that overshoots the total in one go.
        let mut s = SnapshotStream::new();
        assert!(s.accept(10, 10).is_ok());
        assert!(s.accept(4096, 0).is_err());
    }

    #[test]
    fn a_snapshot_stream_whose_remaining_bytes_disagree_is_stopped() {
        let mut s = SnapshotStream::new();
        assert_eq!(s.accept(40, 60), Ok(()));
        // 80 received, but "1000 remaining": the total changed mid-stream.
        let e = s.accept(40, 1000).unwrap_err();
        assert!(e.contains("announced 100 bytes, then 1080"), "{e}");
    }

    #[test]
    fn member_lists_beyond_the_bound_are_refused() {
        assert!(check_members("https://a:2379", 7).is_ok());
        assert!(check_members("https://a:2379", MAX_MEMBERS).is_ok());
        let e = check_members("https://a:2379", 40_001).unwrap_err();
        assert_eq!(e.endpoint, "https://a:2379");
        assert!(e.detail.contains("40001 members, more than 128"), "{}", e.detail);
    }

    #[test]
    fn the_body_cap_is_found_in_an_error_chain() {
        #[derive(Debug)]
        struct Wrap(Box<dyn std::error::Error + Send + Sync>);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let capped = http_body_util::Limited::new(http_body_util::Full::new(bytes::Bytes::from(vec![0u8; 10])), 4);
        let err = futures::executor::block_on(http_body_util::BodyExt::collect(capped)).unwrap_err();
        assert!(is_body_cap(&Wrap(err)));
        assert!(!is_body_cap(&Wrap("other".into())));
        let e = api_body_too_large("list etcd pods in namespace kube-system");
        assert_eq!(e.exit_code(), crate::ExitCode::Transport);
        assert!(e.to_string().contains("16777216 bytes"), "{e}");
    }
}
