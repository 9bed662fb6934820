//! The end-to-end tests against real etcd processes (3.4 or 3.5, by `E2E_ETCD_VERSION`): one
//! test binary, linked once, with one module per noun. The harness (`harness/`) is the library
//! they share. Run one area with `cargo test -p kubectl-etcd-e2e --test tests -- health::`.

mod backups;
mod defrag;
mod discovery;
mod doctor;
mod doctor_logs;
mod faults;
mod fleet;
mod health;
mod learner;
mod objstore;
mod release;
mod restore;
mod snapshot;
mod upgrade;
mod usage;
mod workstation;
