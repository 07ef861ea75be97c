//! Stand-in for the `chrono` crate in UI tests: the same paths, trivial bodies.

/// Like `chrono::Utc`.
pub struct Utc;

impl Utc {
    /// Like `chrono::Utc::now`.
    pub fn now() -> u64 {
        0
    }
}

/// Like `chrono::prelude`.
pub mod prelude {
    pub use crate::Utc;
}
