//! What every layer uses: signals, file reads and writes, units, and the one path to stderr
//! (messages, progress, colour). Imports nothing from the layers above.

pub mod color;
pub mod fsio;
pub mod messages;
pub mod progress;
pub mod signals;
pub mod units;
