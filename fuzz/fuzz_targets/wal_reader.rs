//! `cargo fuzz run wal_reader`: any bytes, as a WAL segment of a data dir, through the WAL
//! check and the whole doctor. Neither may panic. (A bounded run over mutated segments is part
//! of the test suite: shared/src/store/walcheck.rs, mutated_segments_never_panic.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("member/wal");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::create_dir_all(dir.path().join("member/snap")).unwrap();
    std::fs::write(wal.join("0000000000000000-0000000000000000.wal"), data).unwrap();
    let _ = kubectl_etcd::store::walcheck::check(&wal);
    let _ = kubectl_etcd::ops::doctor::diagnose(dir.path(), &Default::default());
});
