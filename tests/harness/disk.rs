//! A disk that can hang: a small ext4 file system on a loop device, frozen with `fsfreeze`
//! (every write to it then blocks, as on a storage device that stopped answering, and etcd's
//! fsync with it), or made slow for one process with the kernel's block I/O throttle (a blkio
//! cgroup; writes still land in the page cache at once, but each `fdatasync` waits for the
//! throttled device, as on a disk shared with busy neighbours). Needs root. tmpfs cannot be frozen, hence ext4 in an image file (sparse: give
//! it room for etcd's 64 MB WAL segments, it costs only what is written).
//!
//! Order matters when a process writes to a frozen file system: it sleeps uninterruptibly, so
//! SIGKILL does not end it until the file system is thawed. Declare the [`Frozen`] guard after
//! the [`crate::Cluster`] whose member uses the disk, so that it thaws before the cluster kills
//! its processes; declare the [`HangingDisk`] before the cluster, so that it is unmounted after.

use std::path::{Path, PathBuf};
use std::process::Command;

/// An ext4 file system in an image file, mounted through a loop device.
pub struct HangingDisk {
    dir: tempfile::TempDir,
}

fn run(cmd: &str, args: &[&str]) {
    let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

impl HangingDisk {
    /// An ext4 file system of `mib` MiB, mounted (needs root and a loop device).
    pub fn new(mib: u64) -> HangingDisk {
        let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-disk-").tempdir().unwrap();
        let image = dir.path().join("image");
        std::fs::File::create(&image).unwrap().set_len(mib << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run("mount", &["-o", "loop", image.to_str().unwrap(), mnt.to_str().unwrap()]);
        HangingDisk { dir }
    }

    /// Where it is mounted.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Freezes it until the guard drops: every write to it blocks from now on.
    pub fn freeze(&self) -> Frozen {
        run("fsfreeze", &["--freeze", self.path().to_str().unwrap()]);
        Frozen { mnt: self.path() }
    }
}

impl HangingDisk {
    /// The loop device under it, as `major:minor`.
    fn device(&self) -> String {
        let o = Command::new("findmnt").args(["-n", "-o", "MAJ:MIN", "--target"]).arg(self.path()).output().unwrap();
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(o.status.success() && dev.contains(':'), "findmnt {}: {dev:?}", self.path().display());
        dev
    }

    /// Throttles process `pid`'s writes to this disk to `bps` bytes a second until the guard
    /// drops: an `fdatasync` of one 4 KiB page then takes 4096/`bps` seconds. Through a cgroup
    /// v1 `blkio` hierarchy (`blkio.throttle.write_bps_device`) or cgroup v2's `io.max`
    /// (`wbps=`), whichever the machine mounts.
    pub fn throttle(&self, pid: i32, bps: u32) -> Throttled {
        let dev = self.device();
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let name = format!("kubectl-etcd-e2e-{}-{pid}", std::process::id());
        let (root, cg, rule, file) = if v1.join("blkio.throttle.write_bps_device").exists() {
            (v1.to_path_buf(), v1.join(&name), format!("{dev} {bps}"), "blkio.throttle.write_bps_device")
        } else {
            let root = PathBuf::from("/sys/fs/cgroup");
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+io");
            (root.clone(), root.join(&name), format!("{dev} wbps={bps}"), "io.max")
        };
        std::fs::create_dir_all(&cg).unwrap_or_else(|e| panic!("{}: {e}", cg.display()));
        std::fs::write(cg.join(file), &rule).unwrap_or_else(|e| panic!("{}/{file} <- {rule}: {e}", cg.display()));
        std::fs::write(cg.join("cgroup.procs"), pid.to_string()).unwrap();
        Throttled { root, cg, pid }
    }
}

/// A process throttled on a [`HangingDisk`] ([`HangingDisk::throttle`]); back in the root
/// group, unthrottled, when dropped (also when the test fails).
pub struct Throttled {
    root: PathBuf,
    cg: PathBuf,
    pid: i32,
}

impl Drop for Throttled {
    fn drop(&mut self) {
        let _ = std::fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        let _ = std::fs::remove_dir(&self.cg);
    }
}

impl Drop for HangingDisk {
    fn drop(&mut self) {
        // Lazily: a process killed a moment ago may still hold a file; the loop device goes
        // with the last reference (mount -o loop sets autoclear).
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A frozen [`HangingDisk`]; thawed when dropped (also when the test fails).
pub struct Frozen {
    mnt: PathBuf,
}

impl Frozen {
    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("--unfreeze").arg(&self.mnt).status();
    }
}
