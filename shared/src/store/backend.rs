//! What etcd keeps in its bbolt backend besides the keys: the cluster's membership.
//!
//! etcd 3.4 and 3.5 write every member to the `members` bucket (key: the member ID in hex,
//! value: the member's JSON — `id`, `peerURLs`, `name`, `clientURLs`, `isLearner`) and removed
//! IDs to `members_removed`. The bucket is readable from a snapshot file and from a data dir's
//! `member/snap/db` whether etcd runs or not: the reader takes no lock and picks the newest valid
//! meta page, as bbolt does at open.

use std::path::{Path, PathBuf};

use crate::store::bbolt::{BoltError, Db};
use crate::store::member::StoredMember;

/// The members of a database, sorted by ID, without removed ones.
pub fn members(db: &Db) -> Result<Vec<StoredMember>, BoltError> {
    let mut removed = std::collections::BTreeSet::new();
    if let Some(root) = db.bucket(b"members_removed")? {
        db.for_each(&root, &mut |k, _| {
            if let Some(id) = std::str::from_utf8(k).ok().and_then(|s| u64::from_str_radix(s, 16).ok()) {
                removed.insert(id);
            }
            Ok(())
        })?;
    }
    let mut out = Vec::new();
    if let Some(root) = db.bucket(b"members")? {
        db.for_each(&root, &mut |_, v| {
            if let Some(m) = v.and_then(|v| serde_json::from_slice::<StoredMember>(v).ok()) {
                out.push(m);
            }
            Ok(())
        })?;
    }
    out.retain(|m| !removed.contains(&m.id));
    out.sort_by_key(|m| m.id);
    Ok(out)
}

/// The backend file of a data dir.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member/snap/db")
}

/// The members recorded in a data dir: the backend's `members` bucket joined with the raft log
/// ([`crate::store::wal::membership`]): etcd 3.5 keeps published attributes (client URLs) out of the
/// bucket, and a member killed soon after a change may have it only in the WAL. Removed members
/// (in either) are left out. etcd may be writing the backend: a read that meets a page in flux
/// is tried again, a few times.
pub fn data_dir_members(data_dir: &Path) -> Result<Vec<StoredMember>, BoltError> {
    let stored = bucket_members(data_dir)?;
    let log = crate::store::wal::membership(data_dir);
    let mut by_id: std::collections::BTreeMap<u64, StoredMember> = log.members;
    for m in stored {
        by_id.insert(m.id, m);
    }
    let mut out: Vec<StoredMember> = by_id.into_values().filter(|m| !log.removed.contains(&m.id)).collect();
    for m in out.iter_mut() {
        if let Some(a) = log.attributes.get(&m.id) {
            if m.client_urls.is_empty() {
                m.client_urls = a.client_urls.clone();
            }
            if m.name.is_empty() {
                m.name = a.name.clone();
            }
        }
    }
    Ok(out)
}

/// The members of a data dir's backend alone (the `members` bucket without `members_removed`),
/// read while etcd may be writing it: a read that meets a page in flux is tried again.
pub fn bucket_members(data_dir: &Path) -> Result<Vec<StoredMember>, BoltError> {
    let path = db_path(data_dir);
    let mut last = None;
    let mut stored = None;
    for _ in 0..3 {
        match Db::open(&path).and_then(|db| members(&db)) {
            Ok(m) => {
                stored = Some(m);
                break;
            }
            Err(e @ BoltError::Io { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stored.ok_or_else(|| last.unwrap_or_else(|| BoltError::Io { path, source: std::io::Error::other("unreadable") }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_as_etcd_writes_it() {
        let m: StoredMember = serde_json::from_str(
            r#"{"id":12345,"peerURLs":["https://10.0.0.1:2380"],"name":"cp-1","clientURLs":["https://10.0.0.1:2379"]}"#,
        )
        .unwrap();
        assert_eq!(m.id, 12345);
        assert_eq!(m.name, "cp-1");
        assert!(!m.is_learner);
        let l: StoredMember =
            serde_json::from_str(r#"{"id":7,"peerURLs":["https://10.0.0.4:2380"],"isLearner":true}"#).unwrap();
        assert!(l.is_learner && l.name.is_empty() && l.client_urls.is_empty());
    }
}
