//! Compile-fail and compile-pass tests of `#[activity]`, `#[orchestrator]` and `#[entity]`.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p trybuild-tests`, then
//! read every diff: each `.stderr` is a message a user will see.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/orchestrator/fail/*.rs");
    t.compile_fail("tests/ui/activity/fail/*.rs");
    t.compile_fail("tests/ui/call/fail/*.rs");
    t.compile_fail("tests/ui/expansion/fail/*.rs");
    t.pass("tests/ui/orchestrator/pass/*.rs");
    t.pass("tests/ui/activity/pass/*.rs");
    t.pass("tests/ui/expansion/pass/*.rs");
}

#[test]
fn entity_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/entity/fail/*.rs");
    t.pass("tests/ui/entity/pass/*.rs");
}
