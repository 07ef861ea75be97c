//! The README's "Testing your orchestrations" section is `tests/readme_testing.rs`, which
//! `cargo test` compiles and runs: a user who copies the section gets a passing test.

#[test]
fn the_readme_testing_section_is_the_compiled_test_file() {
    let readme = include_str!("../README.md");
    let test_file = include_str!("readme_testing.rs");
    assert!(
        readme.contains(&format!("```rust\n{test_file}```")),
        "README.md's \"Testing your orchestrations\" block differs from tests/readme_testing.rs: \
         copy the file into the block"
    );
}
