//! Checking a WAL the way etcd reads it at start (`wal.ReadAll` and `wal.Repair`), without
//! etcd: segment names and sequence, every record's rolling CRC-32C, the last entry, HardState
//! and snapshot markers; a torn tail (what a power loss leaves, and what etcd truncates at
//! start) told apart from damage etcd refuses to start on.

use std::path::Path;

use serde::Serialize;

use crate::store::pb::{decode, get_varint, record};
use crate::store::wal::{Frame, Frames};

/// How a segment's written part ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// At the end of the file, or at the zero-filled tail etcd preallocates.
    Clean,
    /// In a record cut short or half written (a zeroed sector): etcd truncates the WAL here at
    /// start when this is the last segment.
    Torn,
    /// In a record that fails its CRC or does not decode: etcd refuses to start.
    Damaged,
}

/// One segment.
#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    /// File name (`%016x-%016x.wal`: sequence, first index).
    pub name: String,
    /// Sequence number from the name.
    pub seq: Option<u64>,
    /// First raft index from the name.
    pub index: Option<u64>,
    /// Records read.
    pub records: u64,
    /// Bytes holding records.
    pub used: u64,
    /// File size.
    pub size: u64,
    /// How it ends.
    pub end: End,
    /// Where the problem is (byte offset) and what it is, when it does not end cleanly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A WAL's HardState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HardState {
    /// Term.
    pub term: u64,
    /// Vote.
    pub vote: u64,
    /// Commit index.
    pub commit: u64,
}

/// What the WAL holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalReport {
    /// Segments in order.
    pub segments: Vec<Segment>,
    /// The member ID and cluster ID of the metadata record.
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub member_id: Option<u64>,
    /// The cluster ID of the metadata record.
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub cluster_id: Option<u64>,
    /// The first entry's index.
    pub first_index: Option<u64>,
    /// The last entry's index.
    pub last_index: Option<u64>,
    /// The last entry's term.
    pub last_term: Option<u64>,
    /// The last HardState.
    pub hard_state: Option<HardState>,
    /// Snapshot markers `(index, term)`, in order.
    pub snapshots: Vec<(u64, u64)>,
    /// What stops etcd from starting (the first found), if anything.
    pub damage: Vec<String>,
    /// What etcd repairs on its own at start (a torn tail), if anything.
    pub repairable: Vec<String>,
    /// Members the WAL's entries remove (`ConfChangeRemoveNode`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<u64>,
}

/// Parses `%016x-%016x` (before the extension) into its two numbers.
pub fn parse_name(name: &str, ext: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(ext)?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

/// Reads every segment of `wal_dir` as etcd's decoder does: one rolling CRC across segments,
/// reset by each segment's CRC record.
pub fn check(wal_dir: &Path) -> std::io::Result<WalReport> {
    let files = crate::store::wal::wal_entries(wal_dir)?;
    let mut rep = WalReport::default();
    let mut crc: u32 = 0;
    let n = files.len();
    for (i, path) in files.iter().enumerate() {
        let name = path.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
        if let Some(kind) = not_a_file(path) {
            rep.damage.push(format!(
                "{name} is {kind}, not a regular file: etcd cannot read it as a WAL segment (a FIFO blocks it)"
            ));
            break;
        }
        let parsed = parse_name(&name, ".wal");
        let mut seg = Segment {
            name: name.clone(),
            seq: parsed.map(|p| p.0),
            index: parsed.map(|p| p.1),
            records: 0,
            used: 0,
            size: std::fs::metadata(path)?.len(),
            end: End::Clean,
            problem: None,
        };
        if parsed.is_none() {
            rep.damage.push(format!("segment {name} is not named SEQ-INDEX.wal"));
        }
        if let (Some(s), Some(first)) = (seg.seq, rep.segments.first().and_then(|f: &Segment| f.seq)) {
            if s != first + i as u64 {
                rep.damage.push(format!(
                    "segment sequence jumps to {s:016x} at {name} ({:016x} expected): a segment is missing (etcd: \"wal: file sequence numbers do not increase continuously\")",
                    first + i as u64
                ));
            }
        }
        read_segment(path, &mut seg, &mut crc, &mut rep)?;
        match seg.end {
            End::Torn if i + 1 == n => rep.repairable.push(format!(
                "{name} ends in a torn record at byte {}: etcd truncates the WAL there at start (entries after it were never acknowledged)",
                seg.used
            )),
            End::Torn | End::Damaged => rep.damage.push(format!("{name}: {}", seg.problem.clone().unwrap_or_default())),
            End::Clean => {}
        }
        let stop = seg.end != End::Clean;
        rep.segments.push(seg);
        if stop {
            break;
        }
    }
    Ok(rep)
}

/// What stands where a file belongs when it is no regular file (`None`: a regular file, or
/// nothing there, which the open reports).
pub fn not_a_file(path: &Path) -> Option<&'static str> {
    std::fs::metadata(path).ok().and_then(|md| crate::base::fsio::not_regular(&md))
}

/// A segment's written part ends at byte `at` (a zero length field, or a torn record ending at
/// `frame_end`), yet records follow: etcd stops reading there and drops everything after it
/// (its repair is for a torn *tail*), so entries it had acknowledged are lost.
fn records_after(path: &Path, at: u64, frame_end: u64, seg: &mut Segment, what: &str) -> std::io::Result<()> {
    if let Some(data) = crate::store::wal::first_data_after(path, frame_end)? {
        seg.end = End::Damaged;
        seg.problem = Some(format!(
            "{what} at byte {at}, yet records follow it (data from byte {data}): etcd stops reading there and drops every entry after it, acknowledged ones too"
        ));
    }
    Ok(())
}

fn read_segment(path: &Path, seg: &mut Segment, crc: &mut u32, rep: &mut WalReport) -> std::io::Result<()> {
    let mut frames = Frames::open(path)?;
    loop {
        let off = frames.offset();
        let (rec, torn) = match frames.next_frame()? {
            Frame::End => {
                return records_after(path, off, frames.frame_end(), seg, "the written part ends (a zero length)")
            }
            Frame::Problem { torn, reason } => {
                seg.end = if torn { End::Torn } else { End::Damaged };
                seg.problem = Some(reason.clone());
                if torn {
                    records_after(path, off, frames.frame_end(), seg, &format!("a torn record ({reason})"))?;
                }
                return Ok(());
            }
            Frame::Record { record, torn } => (record, torn),
        };
        if rec.kind == record::CRC {
            if *crc != 0 && rec.crc != *crc {
                seg.end = End::Damaged;
                seg.problem =
                    Some(format!("the CRC record at byte {off} does not continue the previous segment's CRC"));
                return Ok(());
            }
            *crc = rec.crc;
        } else {
            *crc = crc32c::crc32c_append(*crc, &rec.data);
            if rec.crc != *crc {
                seg.end = if torn { End::Torn } else { End::Damaged };
                let reason = format!("CRC mismatch in the record at byte {off} (etcd: \"wal: crc mismatch\")");
                seg.problem = Some(reason.clone());
                if torn {
                    records_after(path, off, frames.offset(), seg, &format!("a torn record ({reason})"))?;
                }
                return Ok(());
            }
            note(rec.kind, &rec.data, rep);
        }
        seg.records += 1;
        seg.used = frames.offset();
    }
}

fn note(kind: u64, data: &[u8], rep: &mut WalReport) {
    let Some(f) = decode(data) else { return };
    match kind {
        record::METADATA => {
            rep.member_id = get_varint(&f, 1);
            rep.cluster_id = get_varint(&f, 2);
        }
        record::ENTRY => {
            if let Some(id) = crate::store::wal::removes(data) {
                rep.removed.push(id);
            }
            let (term, index) = (get_varint(&f, 2).unwrap_or(0), get_varint(&f, 3).unwrap_or(0));
            rep.first_index.get_or_insert(index);
            rep.last_index = Some(index);
            rep.last_term = Some(term);
        }
        record::STATE => {
            let hs = HardState {
                term: get_varint(&f, 1).unwrap_or(0),
                vote: get_varint(&f, 2).unwrap_or(0),
                commit: get_varint(&f, 3).unwrap_or(0),
            };
            if hs != (HardState { term: 0, vote: 0, commit: 0 }) {
                rep.hard_state = Some(hs);
            }
        }
        record::SNAPSHOT => rep.snapshots.push((get_varint(&f, 1).unwrap_or(0), get_varint(&f, 2).unwrap_or(0))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::ops::restore::wal::WalWriter;
    use crate::store::pb;

    fn segment(dir: &Path, entries: u64) -> (PathBuf, u64) {
        let mut w = WalWriter::new();
        w.record(record::METADATA, Some(&pb::metadata(7, 9)));
        for i in 1..=entries {
            w.record(record::ENTRY, Some(&pb::entry(0, 2, i, &vec![b'v'; 300])));
        }
        w.record(record::STATE, Some(&pb::hard_state(2, 7, entries)));
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("0000000000000000-0000000000000000.wal");
        w.write(&p).unwrap();
        (p, w.bytes().len() as u64)
    }

    #[test]
    fn a_sound_segment_with_its_preallocated_tail() {
        let t = tempfile::tempdir().unwrap();
        let (_, used) = segment(t.path(), 20);
        let r = check(t.path()).unwrap();
        assert!(r.damage.is_empty() && r.repairable.is_empty(), "{r:?}");
        assert_eq!((r.member_id, r.cluster_id), (Some(7), Some(9)));
        assert_eq!((r.first_index, r.last_index, r.last_term), (Some(1), Some(20), Some(2)));
        assert_eq!(r.hard_state, Some(HardState { term: 2, vote: 7, commit: 20 }));
        assert_eq!(r.segments[0].used, used);
        assert_eq!(r.segments[0].records, 23);
    }

    #[test]
    fn a_torn_tail_is_repairable_and_a_flipped_byte_is_damage() {
        let t = tempfile::tempdir().unwrap();
        let (p, used) = segment(t.path(), 20);
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(used - 5).unwrap();
        let r = check(t.path()).unwrap();
        assert!(r.damage.is_empty(), "{r:?}");
        assert!(r.repairable[0].contains("torn record"), "{r:?}");
        assert_eq!(r.segments[0].end, End::Torn);

        let (p, _) = segment(&t.path().join("b"), 20);
        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(16).position(|w| w.iter().all(|b| *b == b'v')).unwrap() + 2000;
        bytes[at] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let r = check(&t.path().join("b")).unwrap();
        assert!(r.damage[0].contains("CRC mismatch"), "{r:?}");
        assert_eq!(r.segments[0].end, End::Damaged);
    }

    #[test]
    fn a_zeroed_length_mid_segment_is_damage_and_a_fifo_is_never_read() {
        let t = tempfile::tempdir().unwrap();
        let (p, _) = segment(t.path(), 20);
        let mut bytes = std::fs::read(&p).unwrap();
        // The 11th frame's length: header, metadata, then entries of 8 + 304 bytes.
        let mut off = 0;
        for _ in 0..10 {
            let field = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
            off += 8
                + (field & 0xff_ffff_ffff_ffff) as usize
                + if field >> 63 == 1 { ((field >> 56) & 7) as usize } else { 0 };
        }
        bytes[off..off + 8].fill(0);
        std::fs::write(&p, &bytes).unwrap();
        let r = check(t.path()).unwrap();
        assert!(r.damage[0].contains(&format!("a zero length) at byte {off}, yet records follow it")), "{r:?}");
        assert_eq!(r.segments[0].end, End::Damaged);

        let f = t.path().join("fifo");
        std::fs::create_dir(&f).unwrap();
        let fifo = f.join("0000000000000000-0000000000000000.wal");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let r = check(&f).unwrap();
        assert!(r.damage[0].contains("is a FIFO, not a regular file"), "{r:?}");
    }

    #[test]
    fn names_parse_and_a_missing_segment_is_damage() {
        assert_eq!(parse_name("0000000000000002-00000000000000ff.wal", ".wal"), Some((2, 255)));
        assert_eq!(parse_name("junk.wal", ".wal"), None);
        let t = tempfile::tempdir().unwrap();
        segment(t.path(), 3);
        let (p, _) = segment(&t.path().join("x"), 3);
        std::fs::rename(p, t.path().join("0000000000000002-0000000000000004.wal")).unwrap();
        let r = check(t.path()).unwrap();
        assert!(r.damage.iter().any(|d| d.contains("a segment is missing")), "{r:?}");
    }

    /// A bounded fuzz run: thousands of mutations of a real segment (flipped bits, overwritten
    /// length fields, truncations) through the check and the doctor; none may panic. Flips that
    /// read sound can only be in what etcd's CRC does not cover either (a record's type or
    /// padding): a few percent at most.
    #[test]
    fn mutated_segments_never_panic() {
        let t = tempfile::tempdir().unwrap();
        let (p, used) = segment(&t.path().join("member/wal"), 30);
        std::fs::create_dir_all(t.path().join("member/snap")).unwrap();
        let base = std::fs::read(&p).unwrap()[..used as usize + 64].to_vec();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut sound_flips = 0;
        for round in 0..3000 {
            let mut m = base.clone();
            match round % 3 {
                0 => {
                    let at = (next() as usize) % used as usize;
                    m[at] ^= 1 << (next() % 8);
                }
                1 => {
                    let at = ((next() as usize) % (used as usize / 8)) * 8;
                    m[at..at + 8].copy_from_slice(&next().to_le_bytes());
                }
                _ => m.truncate((next() as usize) % m.len()),
            }
            std::fs::write(&p, &m).unwrap();
            let r = check(&t.path().join("member/wal")).unwrap();
            let _ = crate::ops::doctor::diagnose(t.path(), &Default::default());
            // The CRC covers each record's data, as etcd's: a flipped payload bit never reads sound.
            if round % 3 == 0 && r.damage.is_empty() && r.repairable.is_empty() {
                sound_flips += 1;
            }
        }
        assert!(sound_flips < 100, "{sound_flips} of 1000 flipped bits read as sound");
    }
}
