//! The few protobuf messages a restored data dir needs (raftpb, walpb, snappb, etcdserverpb),
//! encoded by hand exactly as etcd's gogo-protobuf code encodes them: fields in number order,
//! non-nullable scalars always present, optional bytes only when set.

/// Appends a varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a varint field.
pub fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, (field as u64) << 3);
    varint(out, v);
}

/// Appends a length-delimited field.
pub fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, ((field as u64) << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// `etcdserverpb.Metadata{NodeID, ClusterID}` (the WAL's metadata).
pub fn metadata(node_id: u64, cluster_id: u64) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, node_id);
    field_varint(&mut b, 2, cluster_id);
    b
}

/// `raftpb.ConfChange{ID: 0, Type: ConfChangeAddNode, NodeID, Context}`.
pub fn conf_change_add(node_id: u64, context: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, 0);
    field_varint(&mut b, 2, 0);
    field_varint(&mut b, 3, node_id);
    field_bytes(&mut b, 4, context);
    b
}

/// raftpb entry type of a configuration change.
pub const ENTRY_CONF_CHANGE: u64 = 1;

/// `raftpb.Entry{Type, Term, Index, Data}`.
pub fn entry(kind: u64, term: u64, index: u64, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, kind);
    field_varint(&mut b, 2, term);
    field_varint(&mut b, 3, index);
    field_bytes(&mut b, 4, data);
    b
}

/// `raftpb.HardState{Term, Vote, Commit}`.
pub fn hard_state(term: u64, vote: u64, commit: u64) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, term);
    field_varint(&mut b, 2, vote);
    field_varint(&mut b, 3, commit);
    b
}

/// `raftpb.ConfState{Voters, AutoLeave: false}`.
pub fn conf_state(voters: &[u64]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in voters {
        field_varint(&mut b, 1, *v);
    }
    field_varint(&mut b, 5, 0);
    b
}

/// `walpb.Snapshot{Index, Term, ConfState}` (ConfState omitted when `None`).
pub fn wal_snapshot(index: u64, term: u64, conf_state: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, index);
    field_varint(&mut b, 2, term);
    if let Some(cs) = conf_state {
        field_bytes(&mut b, 3, cs);
    }
    b
}

/// `raftpb.Snapshot{Data, Metadata{ConfState, Index, Term}}`.
pub fn raft_snapshot(data: &[u8], conf_state: &[u8], index: u64, term: u64) -> Vec<u8> {
    let mut meta = Vec::new();
    field_bytes(&mut meta, 1, conf_state);
    field_varint(&mut meta, 2, index);
    field_varint(&mut meta, 3, term);
    let mut b = Vec::new();
    field_bytes(&mut b, 1, data);
    field_bytes(&mut b, 2, &meta);
    b
}

/// `snappb.Snapshot{Crc, Data}`: the contents of a `.snap` file.
pub fn snap_file(data: &[u8]) -> Vec<u8> {
    let crc = crc32c::crc32c(data);
    let mut b = Vec::new();
    field_varint(&mut b, 1, crc as u64);
    field_bytes(&mut b, 2, data);
    b
}

/// WAL record types.
pub mod record {
    /// Metadata.
    pub const METADATA: u64 = 1;
    /// A raft entry.
    pub const ENTRY: u64 = 2;
    /// A hard state.
    pub const STATE: u64 = 3;
    /// The rolling CRC carried over from the previous file.
    pub const CRC: u64 = 4;
    /// A snapshot marker.
    pub const SNAPSHOT: u64 = 5;
}

/// `walpb.Record{Type, Crc, Data}`.
pub fn wal_record(kind: u64, crc: u32, data: Option<&[u8]>) -> Vec<u8> {
    let mut b = Vec::new();
    field_varint(&mut b, 1, kind);
    field_varint(&mut b, 2, crc as u64);
    if let Some(d) = data {
        field_bytes(&mut b, 3, d);
    }
    b
}

/// One decoded protobuf field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// A varint.
    Varint(u64),
    /// A length-delimited field (bytes, string or message).
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit field.
    Fixed(u64),
}

/// Reads a varint at `*pos`; `None` when the buffer ends inside it or it runs past 10 bytes.
pub(crate) fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes the top-level fields of a message, in order; `None` when it is not well-formed
/// protobuf (so that a guess at a message's type can be told wrong).
pub fn decode(b: &[u8]) -> Option<Vec<(u32, Value<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let key = read_varint(b, &mut pos)?;
        let field = u32::try_from(key >> 3).ok().filter(|f| *f > 0)?;
        let v = match key & 7 {
            0 => Value::Varint(read_varint(b, &mut pos)?),
            1 => {
                let bytes = b.get(pos..pos + 8)?;
                pos += 8;
                Value::Fixed(u64::from_le_bytes(bytes.try_into().ok()?))
            }
            2 => {
                let len = usize::try_from(read_varint(b, &mut pos)?).ok()?;
                let bytes = b.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Value::Bytes(bytes)
            }
            5 => {
                let bytes = b.get(pos..pos + 4)?;
                pos += 4;
                Value::Fixed(u64::from(u32::from_le_bytes(bytes.try_into().ok()?)))
            }
            _ => return None,
        };
        out.push((field, v));
    }
    Some(out)
}

/// The first varint of `field`.
pub fn get_varint(fields: &[(u32, Value<'_>)], field: u32) -> Option<u64> {
    fields.iter().find_map(|(f, v)| match v {
        Value::Varint(x) if *f == field => Some(*x),
        _ => None,
    })
}

/// Every length-delimited value of `field`.
pub fn get_bytes<'a>(fields: &[(u32, Value<'a>)], field: u32) -> Vec<&'a [u8]> {
    fields
        .iter()
        .filter_map(|(f, v)| match v {
            Value::Bytes(x) if *f == field => Some(*x),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_what_the_encoders_write() {
        let e = entry(ENTRY_CONF_CHANGE, 3, 7, b"xyz");
        let f = decode(&e).unwrap();
        assert_eq!(get_varint(&f, 1), Some(ENTRY_CONF_CHANGE));
        assert_eq!(get_varint(&f, 3), Some(7));
        assert_eq!(get_bytes(&f, 4), vec![b"xyz".as_slice()]);
        assert!(decode(&[0x0a, 0x05, 0x01]).is_none(), "a length past the end is not protobuf");
    }

    #[test]
    fn encodings_match_etcds() {
        // Bytes read off a WAL that `etcdutl snapshot restore` wrote.
        assert_eq!(wal_record(record::CRC, 0, None), [0x08, 0x04, 0x10, 0x00]);
        assert_eq!(wal_snapshot(0, 0, None), [0x08, 0x00, 0x10, 0x00]);
        assert_eq!(conf_state(&[1, 2]), [0x08, 0x01, 0x08, 0x02, 0x28, 0x00]);
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}
