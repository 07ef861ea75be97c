//! Stand-in for the `rand` crate in UI tests: the same paths, trivial bodies.

/// Like `rand::random`.
pub fn random<T: Default>() -> T {
    T::default()
}

/// Like `rand::thread_rng`.
pub fn thread_rng() -> rngs::ThreadRng {
    rngs::ThreadRng
}

/// Like `rand::Rng`.
pub trait Rng {
    /// Like `Rng::gen_range`.
    fn gen_range(&mut self, range: std::ops::Range<u32>) -> u32 {
        range.start
    }
}

/// Like `rand::rngs`.
pub mod rngs {
    /// Like `rand::rngs::ThreadRng`.
    pub struct ThreadRng;
    impl super::Rng for ThreadRng {}
}

/// Like `rand::prelude`.
pub mod prelude {
    pub use crate::rngs::ThreadRng;
    pub use crate::{Rng, random, thread_rng};
}
