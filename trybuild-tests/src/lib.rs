//! UI tests for the macros live in `tests/`.
