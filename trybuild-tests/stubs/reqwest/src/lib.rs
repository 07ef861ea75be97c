//! Stand-in for the `reqwest` crate in UI tests: the same paths, trivial bodies.

/// Like `reqwest::get`.
pub async fn get(_url: &str) {}
