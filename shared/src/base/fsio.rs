//! Files the core reads and writes: bounded reads that refuse what is not a regular file,
//! durable writes (fsync, then rename, then the folder fsynced), kernel copies.

use std::io::Read;
use std::path::Path;

use super::signals::interrupting_signal;
use super::units::format_bytes;

/// Copies the first `len` bytes of `from` to `to`, both from their start, the way the standard
/// library copies between files: in the kernel where it can (`copy_file_range`: no pass through
/// user space, and shared extents on file systems that reflink), else `sendfile` or a buffer.
/// Checks [`interrupted`](super::signals::interrupted) between 64 MiB chunks; an interruption is an `Interrupted` error
/// naming the signal. Moves both files' offsets (positioned reads of `from` are unaffected).
pub fn copy_range(from: &std::fs::File, to: &std::fs::File, len: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    const CHUNK: u64 = 64 << 20;
    let (mut r, mut w) = (from, to);
    r.seek(SeekFrom::Start(0))?;
    w.seek(SeekFrom::Start(0))?;
    let mut done = 0u64;
    while done < len {
        if let Some(sig) = interrupting_signal() {
            return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, format!("interrupted by {sig}")));
        }
        let n = std::io::copy(&mut r.take((len - done).min(CHUNK)), &mut w)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file ends after {done} of {len} bytes"),
            ));
        }
        done += n;
    }
    Ok(())
}

/// The most a certificate, key or CA bundle file may hold (real ones are a few KiB).
pub const MAX_PEM: u64 = 1 << 20;
/// The most a static pod manifest or etcd config file may hold.
pub const MAX_MANIFEST: u64 = 1 << 20;
/// The most a kubeconfig may hold.
pub const MAX_KUBECONFIG: u64 = 16 << 20;

/// What a path holds when it is not a regular file (`a FIFO`, `a character device`, ...), for
/// messages; `None` for a regular file. Takes `symlink_metadata` to name links too.
pub fn not_regular(md: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    Some(if ft.is_file() {
        return None;
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    })
}

/// Reads a small input file whole, refusing what is not a regular file (a FIFO would block for
/// ever, `/dev/zero` never ends) and anything larger than `cap`: the error names the file and
/// why.
pub fn read_bounded(path: &Path, what: &'static str, cap: u64) -> crate::Result<Vec<u8>> {
    let err = |source: std::io::Error| crate::Error::ReadFile { input: false, what, path: path.to_path_buf(), source };
    let md = std::fs::metadata(path).map_err(err)?;
    if let Some(kind) = not_regular(&md) {
        return Err(err(std::io::Error::other(format!("it is {kind}, not a regular file: name the file itself"))));
    }
    if md.len() > cap {
        return Err(err(std::io::Error::other(format!(
            "it holds {}, more than any {what} ({} at most): is it the right file?",
            format_bytes(md.len()),
            format_bytes(cap)
        ))));
    }
    let mut out = Vec::with_capacity(md.len() as usize);
    std::fs::File::open(path).map_err(err)?.take(cap + 1).read_to_end(&mut out).map_err(err)?;
    if out.len() as u64 > cap {
        return Err(err(std::io::Error::other(format!("it grew past {} while being read", format_bytes(cap)))));
    }
    Ok(out)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_bounded_string(path: &Path, what: &'static str, cap: u64) -> crate::Result<String> {
    let bytes = read_bounded(path, what, cap)?;
    String::from_utf8(bytes).map_err(|_| crate::Error::ReadFile {
        input: false,
        what,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })
}

/// Creates `path` (never over an existing file) with `mode`, writes `data` and fsyncs it: the
/// one way the core writes a small file it must not lose (keys, manifests, `.snap` files).
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| crate::Error::Io { action: format!("create {}", path.display()), source })?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|source| crate::Error::Io { action: format!("write {}", path.display()), source })
}

/// fsyncs a directory, so that a rename or a new file in it survives a power loss.
pub fn sync_dir(dir: &Path) -> crate::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| crate::Error::Io { action: format!("fsync {}", dir.display()), source })
}

/// Puts `data` at `path` whole or not at all, the way a static pod manifest must appear (kubelet
/// reads the folder at any moment): written and fsynced as a hidden `.NAME.part` beside it
/// (kubelet ignores dot files), renamed into place, the folder fsynced. Refuses when `path`
/// exists: nothing is overwritten.
pub fn publish(path: &Path, data: &[u8], mode: u32) -> crate::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    if path.exists() {
        return Err(crate::Error::Refused(format!(
            "{} already exists: move it aside first (nothing is overwritten)",
            path.display()
        )));
    }
    let part = dir.join(format!(".{name}.part"));
    if part.exists() {
        std::fs::remove_file(&part)
            .map_err(|source| crate::Error::Io { action: format!("remove the stale {}", part.display()), source })?;
    }
    write_new(&part, data, mode)?;
    std::fs::rename(&part, path).map_err(|source| crate::Error::Io {
        action: format!("move {} to {}", part.display(), path.display()),
        source,
    })?;
    sync_dir(dir)
}
