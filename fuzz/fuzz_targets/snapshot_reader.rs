//! `cargo fuzz run snapshot_reader`: any bytes, as a snapshot file, through status and verify.
//! Neither may panic. (A bounded run over mutated real snapshots is part of the test suite:
//! tests/snapshot.rs, reader_survives_mutated_snapshots.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    std::fs::write(&path, data).unwrap();
    let _ = kubectl_etcd::store::snapfile::status(&path);
    let _ = kubectl_etcd::store::snapfile::verify(&path);
});
