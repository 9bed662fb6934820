//! One operation each: health, members (learners), defrag, snapshot save, restore, the
//! doctor, certificates, the backup and defrag schedules, upgrades, what fills the database (usage). Imports nothing from `cli`.

pub mod certs;
pub mod defrag;
pub mod doctor;
pub mod health;
pub mod members;
pub mod restore;
pub mod schedule;
pub mod snapshot;
pub mod upgrade;
pub mod usage;
