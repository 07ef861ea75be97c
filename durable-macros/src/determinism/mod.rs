//! The determinism check: finds code in an orchestrator body that would make a replay differ
//! from the first run, and says what to use instead.
//!
//! It is syntactic, but it resolves names the way rustc would within what a proc macro can see
//! (the body, and the file it is in): `scope` builds the scope model and resolves a path to
//! the item it names, `rules` says which items are refused and why, `visitor` walks the body
//! with the scopes in step, `hash_collections` and `clock` follow values through bindings,
//! `macros` looks inside macro invocations, and `escape_hatch` handles
//! `#[durable::allow_nondeterministic("reason")]`. What it cannot see is listed in the rustdoc
//! of `#[orchestrator]`; the runtime's replay check is the backstop for those.

mod clock;
mod declare;
mod escape_hatch;
mod hash_collections;
mod macros;
mod rules;
mod scope;
mod visitor;

#[cfg(test)]
mod resolver_tests;
#[cfg(test)]
mod tests;

pub(crate) use escape_hatch::{strip_escape_hatches, take_from_signature};
pub(crate) use scope::FileScope;

use syn::visit::Visit;
use visitor::Checker;

/// Checks the body of the orchestrator `name`; one error per offending expression.
pub(crate) fn check(
    name: &syn::Ident,
    block: &syn::Block,
    inputs: &[&syn::PatType],
    file: &FileScope,
) -> Vec<syn::Error> {
    let module = file.module_of(&name.to_string(), block);
    let mut checker = Checker::new(file, module);
    for input in inputs {
        checker.bind_pat(&input.pat, None, Some(&input.ty));
    }
    checker.visit_block(block);
    let mut errors = checker.errors;
    errors.extend(escape_hatch::misplaced(block));
    errors
}
