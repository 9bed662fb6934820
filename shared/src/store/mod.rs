//! What etcd keeps on disk, read and written natively: bbolt, the protobuf records, the WAL and
//! its checks, the backend's buckets, the snapshot file format, compression, snapshot
//! directories and the database lock. Imports nothing from `reach`, `ops` or `cli`.

pub mod awsconfig;
pub mod backend;
pub mod bbolt;
pub mod bucket;
pub mod compress;
pub mod dblock;
pub mod keyspace;
pub mod member;
pub mod objstore;
pub mod pb;
pub mod snapdir;
pub mod snapfile;
pub mod trailer;
pub mod wal;
pub mod walcheck;
