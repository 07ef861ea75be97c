use super::borrows::{Position, borrowed_part, pretty};
use super::*;

fn message(kind: Kind, ty: Type, position: Position) -> Option<String> {
    borrowed_part(kind, &ty, position).map(|err| err.to_string())
}

#[test]
fn nested_borrows_are_found_with_the_owned_form() {
    assert_eq!(
        message(
            Kind::Activity,
            syn::parse_quote!(Vec<&str>),
            Position::Input
        )
        .as_deref(),
        Some(
            "#[activity] inputs are deserialized from history and must be owned: take \
             `Vec<String>` instead of `Vec<&str>`"
        )
    );
    assert_eq!(
        message(
            Kind::Activity,
            syn::parse_quote!(std::borrow::Cow<'_, str>),
            Position::Input
        )
        .as_deref(),
        Some(
            "#[activity] inputs are deserialized from history and must be owned: take \
             `String` instead of `std::borrow::Cow<'_, str>`"
        )
    );
    assert_eq!(
        message(
            Kind::Activity,
            syn::parse_quote!(&'static str),
            Position::Output
        )
        .as_deref(),
        Some(
            "#[activity] outputs are recorded in history and decoded by the caller, so \
             they must be owned: return `String` instead of `&'static str`"
        )
    );
    assert_eq!(
        message(
            Kind::Orchestrator,
            syn::parse_quote!(Vec<impl std::fmt::Display>),
            Position::Input
        )
        .as_deref(),
        Some("#[orchestrator] inputs need a concrete serde type, not `impl Trait`")
    );
}

#[test]
fn a_result_error_is_only_displayed_so_it_may_borrow_for_static() {
    for ty in [
        syn::parse_quote!(Result<u32, &'static str>),
        syn::parse_quote!(std::result::Result<(), &'static str>),
        syn::parse_quote!(Result<String, Box<dyn std::error::Error + 'static>>),
    ] {
        assert_eq!(message(Kind::Activity, ty, Position::Output), None);
    }
    assert_eq!(
        message(
            Kind::Orchestrator,
            syn::parse_quote!(Result<Vec<&'static str>, &'static str>),
            Position::Output
        )
        .as_deref(),
        Some(
            "#[orchestrator] outputs are recorded in history and decoded by the caller, so \
             they must be owned: return `Result<Vec<String>, &'static str>` instead of \
             `Result<Vec<&'static str>, &'static str>`"
        )
    );
    // The registration names the type, so it cannot be an `impl Trait`.
    assert_eq!(
        message(
            Kind::Activity,
            syn::parse_quote!(Result<String, impl std::fmt::Display>),
            Position::Output
        )
        .as_deref(),
        Some(
            "#[activity] must name its error type, not `impl Trait`: write the type \
             (`String`, `&'static str`, your own error type)"
        )
    );
    // Inputs are decoded whatever they are called.
    assert!(
        message(
            Kind::Activity,
            syn::parse_quote!(Result<u32, &'static str>),
            Position::Input
        )
        .is_some()
    );
}

#[test]
fn owned_and_static_types_pass() {
    for ty in [
        syn::parse_quote!(Vec<String>),
        syn::parse_quote!(std::borrow::Cow<'static, str>),
        syn::parse_quote!(HashMap<String, (u32, Option<Vec<u8>>)>),
        syn::parse_quote!([u8; 4]),
    ] {
        assert!(message(Kind::Activity, ty, Position::Input).is_none());
    }
}

fn errors(kind: Kind, item: ItemFn) -> Vec<String> {
    let mut errors = Vec::new();
    check(kind, &item, &mut errors);
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn sound_signatures_pass() {
    for item in [
        syn::parse_quote!(
            async fn a() {}
        ),
        syn::parse_quote!(
            async fn a(ctx: ActivityContext, n: u32) -> u32 {
                n
            }
        ),
        syn::parse_quote!(
            async fn a(ctx: Ctx, #[cfg(test)] n: u32, s: String) {}
        ),
        syn::parse_quote!(
            async fn a(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) {}
        ),
        syn::parse_quote!(
            async fn a(x: Ctx, a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) {}
        ),
    ] {
        assert_eq!(errors(Kind::Activity, item), Vec::<String>::new());
    }
    for item in [
        syn::parse_quote!(
            async fn o(ctx: OrchestrationContext) {}
        ),
        syn::parse_quote!(
            async fn o(ctx: durable_runtime::OrchestrationContext, n: u32) {}
        ),
        // An alias: checked by type in the generated code.
        syn::parse_quote!(
            async fn o(ctx: Workflow, n: u32) {}
        ),
    ] {
        assert_eq!(errors(Kind::Orchestrator, item), Vec::<String>::new());
    }
}

#[test]
fn each_misuse_is_one_error() {
    let cases: [(Kind, ItemFn, &str); 7] = [
        (
            Kind::Activity,
            syn::parse_quote!(
                async unsafe fn a() {}
            ),
            "#[activity] functions cannot be `unsafe`",
        ),
        (
            Kind::Activity,
            syn::parse_quote!(
                async extern "C" fn a() {}
            ),
            "#[activity] functions cannot declare an ABI",
        ),
        (
            Kind::Activity,
            syn::parse_quote!(
                async fn a(n: u32, ctx: ActivityContext) {}
            ),
            "`ActivityContext` must be the first parameter",
        ),
        (
            Kind::Activity,
            syn::parse_quote!(
                async fn a(#[cfg(test)] ctx: ActivityContext) {}
            ),
            "`ActivityContext` cannot be under `#[cfg(..)]`",
        ),
        (
            Kind::Activity,
            syn::parse_quote!(
                async fn a(#[cfg_attr(test, cfg(unix))] n: u32) {}
            ),
            "#[activity] cannot see through `cfg_attr`",
        ),
        (
            Kind::Orchestrator,
            syn::parse_quote!(
                async fn o(n: u32) {}
            ),
            "an orchestrator takes `ctx: OrchestrationContext` as its first parameter",
        ),
        (
            Kind::Orchestrator,
            syn::parse_quote!(
                async fn o(ctx: ActivityContext) {}
            ),
            "#[orchestrator] takes `OrchestrationContext`, not `ActivityContext`",
        ),
    ];
    for (kind, item, expected) in cases {
        let errors = errors(kind, item);
        assert!(
            errors.first().is_some_and(|e| e.starts_with(expected)),
            "{errors:?}"
        );
    }
    let nine: ItemFn = syn::parse_quote!(
        async fn a(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8, i: u8) {}
    );
    assert_eq!(errors(Kind::Activity, nine).len(), 1);
}

#[test]
fn types_print_as_written() {
    assert_eq!(
        pretty(&syn::parse_quote!(HashMap<String, Vec<&'static str>>)),
        "HashMap<String, Vec<&'static str>>"
    );
    assert_eq!(pretty(&syn::parse_quote!(&[u8])), "&[u8]");
    assert_eq!(pretty(&syn::parse_quote!((u32, String))), "(u32, String)");
}
