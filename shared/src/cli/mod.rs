//! The command line: global arguments, the printers (table, wide, json, yaml) and their one
//! `emit`, completion, `--version`.

pub mod args;
pub mod complete;
pub mod print;
pub mod version;
