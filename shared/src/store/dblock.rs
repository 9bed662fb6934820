//! Whether a running etcd has a database open. bbolt locks its file with
//! `flock(LOCK_EX|LOCK_NB)` for as long as it is open read-write (bbolt's `flock` in
//! `bolt_unix.go`, retried every 50 ms until its timeout, which etcd leaves at 0: forever), so
//! a database that a running etcd writes to cannot be share-locked. The probe asks for a shared
//! lock without waiting and gives it back at once: an etcd starting at that instant waits 50 ms
//! at most, never fails.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};

/// A process that has the database open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process ID.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// True when another open file description holds a lock on `db` that excludes a shared one
/// (an etcd, or any bbolt writer, has it open). Never waits; the probe's lock is released
/// before returning. A file that cannot be opened is not locked.
pub fn is_locked(db: &Path) -> bool {
    let Ok(f) = std::fs::File::open(db) else { return false };
    match f.try_lock_shared() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// The processes with `db` open, from their `/proc/PID/fd` links (the same device and inode):
/// as many as this user may look at (root sees them all). At most `limit` are returned.
pub fn holders(db: &Path, limit: usize) -> Vec<Holder> {
    let Ok(target) = std::fs::metadata(db) else { return Vec::new() };
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let open = fds
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino()));
        if open {
            let command = crate::base::fsio::read_bounded_string(&p.path().join("comm"), "process name", 4096)
                .map(|c| c.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            found.push(Holder { pid, command });
            if found.len() >= limit {
                break;
            }
        }
    }
    found
}

/// What to say of a locked database: who holds it, where that can be told.
fn locked_by(db: &Path) -> String {
    let who = holders(db, 4);
    if who.is_empty() {
        return format!("{} is locked by a running etcd (a process this user cannot see)", db.display());
    }
    let who: Vec<String> = who.iter().map(Holder::to_string).collect();
    format!("{} is locked by a running etcd: {}", db.display(), who.join(", "))
}

/// Before a data dir's database is read as a copy: refused (exit 1) while a running etcd holds
/// it, naming the process where it can be told; with `force`, a warning to print instead.
/// `Ok(None)`: nobody holds it.
pub fn check_unlocked(data_dir: &Path, force: bool) -> Result<Option<String>> {
    let db = data_dir.join("member/snap/db");
    if !is_locked(&db) {
        return Ok(None);
    }
    let why = locked_by(&db);
    if force {
        return Ok(Some(format!(
            "{why}; going on (--force): a copy of a database etcd is writing may lack its last writes"
        )));
    }
    Err(Error::Refused(format!(
        "refusing to read {}: {why}; stop that etcd first (kubeadm: move its manifest out of /etc/kubernetes/manifests), or pass --force to copy it while it runs",
        data_dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_locked_by_a_writer_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("member/snap");
        std::fs::create_dir_all(&snap).unwrap();
        let db = snap.join("db");
        std::fs::write(&db, b"x").unwrap();
        assert!(!is_locked(&db));
        assert_eq!(check_unlocked(dir.path(), false).unwrap(), None);
        // As bbolt locks it: exclusive, on another open file description.
        let writer = std::fs::OpenOptions::new().read(true).write(true).open(&db).unwrap();
        writer.try_lock().unwrap();
        assert!(is_locked(&db));
        // This process is left out of the holders: it is the one asking.
        let e = check_unlocked(dir.path(), false).unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Negative);
        let text = e.to_string();
        assert!(text.contains("is locked by a running etcd") && text.contains("pass --force"), "{text}");
        let warning = check_unlocked(dir.path(), true).unwrap().unwrap();
        assert!(warning.contains("(--force)"), "{warning}");
        // The probe never kept a lock: the writer's lock is still the only one, and once it
        // goes, the database is free.
        drop(writer);
        assert!(!is_locked(&db));
        assert!(std::fs::File::open(&db).unwrap().try_lock().is_ok());
    }

    #[test]
    fn holders_are_found_by_device_and_inode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, b"x").unwrap();
        let mut child =
            std::process::Command::new("sleep").arg("30").stdin(std::fs::File::open(&db).unwrap()).spawn().unwrap();
        // spawn returns once the child has exec'd: its stdin is the file.
        let found = holders(&db, 4);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|h| h.pid == child.id()), "{found:?}");
        assert!(found.iter().any(|h| h.command == "sleep"), "{found:?}");
    }
}
