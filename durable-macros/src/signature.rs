//! Reading and checking the annotated function's signature.
//!
//! What can be decided from the tokens is decided here, with one error at the offending token:
//! `async`, no generics, no `unsafe`, owned inputs and output (no reference, elided lifetime or
//! `impl Trait` anywhere inside them), where the context goes. What needs types (is this input
//! a serde type, is this first parameter the context under another name, is the return type a
//! `Result`) is left to the compiler, through traits the generated code names at the user's
//! tokens.

use quote::ToTokens;
use std::fmt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Attribute, FnArg, GenericArgument, ItemFn, Lifetime, PathArguments, ReturnType, Type};

/// Which attribute is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Activity,
    Orchestrator,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Activity => "activity",
            Kind::Orchestrator => "orchestrator",
        })
    }
}

impl Kind {
    /// The context type this kind takes.
    pub(crate) fn context(self) -> &'static str {
        match self {
            Kind::Activity => "ActivityContext",
            Kind::Orchestrator => "OrchestrationContext",
        }
    }

    fn other_context(self) -> &'static str {
        match self {
            Kind::Activity => "OrchestrationContext",
            Kind::Orchestrator => "ActivityContext",
        }
    }
}

/// The most parameters after the context: what `ActivityFn` / `OrchestratorFn` cover.
const MAX_INPUTS: usize = 8;

/// The most parameters under `#[cfg]`: the call is written once per combination.
const MAX_CFG_PARAMS: usize = 6;

/// One parameter, as the generated registration needs it.
pub(crate) struct Param {
    pub ty: Type,
    /// The predicates of its `#[cfg(..)]` attributes (all must hold), if any.
    pub cfg: Vec<proc_macro2::TokenStream>,
}

/// The parts of the signature that the expansion needs.
pub(crate) struct Signature {
    /// Every parameter, the context included.
    pub params: Vec<Param>,
    /// Whether the first parameter may be the context (decided by its type): it exists and has
    /// no `#[cfg]`. For an orchestrator it is always the context.
    pub first_may_be_context: bool,
    /// The declared return type, if any.
    pub return_type: Option<Type>,
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        _ => false,
    }
}

/// Whether `ty` can name the context under another name (`use ... OrchestrationContext as
/// Ctx`): a path without generic arguments that is not a well-known input type. The compiler
/// then checks that it is the context, with an error at the type if not.
fn may_name_context(ty: &Type) -> bool {
    const KNOWN_INPUTS: &[&str] = &[
        "bool",
        "char",
        "str",
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "usize",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "isize",
        "f32",
        "f64",
        "String",
        "Vec",
        "VecDeque",
        "Option",
        "Result",
        "Box",
        "HashMap",
        "HashSet",
        "BTreeMap",
        "BTreeSet",
        "Value",
        "Uuid",
        "Duration",
        "SystemTime",
        "PathBuf",
    ];
    let Type::Path(path) = ty else { return false };
    if path.qself.is_some() {
        return false;
    }
    path.path.segments.last().is_some_and(|segment| {
        segment.arguments.is_none() && !KNOWN_INPUTS.contains(&segment.ident.to_string().as_str())
    })
}

/// Checks the signature, pushing one error per problem into `errors`.
pub(crate) fn check(kind: Kind, item: &ItemFn, errors: &mut Vec<syn::Error>) -> Option<Signature> {
    let sig = &item.sig;
    let before = errors.len();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!(
                "#[{kind}] needs an `async fn`: write `async fn {}(...)`",
                sig.ident
            ),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            format!(
                "#[{kind}] functions cannot be `unsafe`: the runtime calls them with no way to \
                 uphold a safety contract; make it a safe `async fn` with an `unsafe` block inside"
            ),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("#[{kind}] functions cannot declare an ABI: remove `extern`"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "#[{kind}] functions cannot be generic: they are registered and called by name, \
                 so every type must be concrete"
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("#[{kind}] functions cannot be variadic"),
        ));
    }
    let context = kind.context();
    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("#[{kind}] must be a free function, not a method: remove `self`"),
            )),
            FnArg::Typed(typed) => {
                let index = params.len();
                let ty = &*typed.ty;
                let cfg = cfg_predicates(kind, &typed.attrs, errors);
                if last_segment_is(ty, kind.other_context()) {
                    errors.push(syn::Error::new_spanned(
                        ty,
                        format!(
                            "#[{kind}] takes `{context}`, not `{}`",
                            kind.other_context()
                        ),
                    ));
                } else if last_segment_is(ty, context) && index > 0 {
                    errors.push(syn::Error::new_spanned(
                        ty,
                        format!("`{context}` must be the first parameter"),
                    ));
                } else if last_segment_is(ty, context) && !cfg.is_empty() {
                    errors.push(syn::Error::new_spanned(
                        ty,
                        format!("`{context}` cannot be under `#[cfg(..)]`"),
                    ));
                } else if let Some(err) = borrowed_part(kind, ty, Position::Input) {
                    errors.push(err);
                }
                params.push(Param {
                    ty: ty.clone(),
                    cfg,
                });
            }
        }
    }
    let first_may_be_context = params.first().is_some_and(|first| first.cfg.is_empty());
    if kind == Kind::Orchestrator {
        let first = params.first();
        let takes_context = first.is_some_and(|first| {
            first.cfg.is_empty()
                && (last_segment_is(&first.ty, context) || may_name_context(&first.ty))
        });
        if !takes_context {
            let span = sig
                .inputs
                .first()
                .map(Spanned::span)
                .unwrap_or_else(|| sig.paren_token.span.join());
            errors.push(syn::Error::new(
                span,
                format!(
                    "an orchestrator takes `ctx: OrchestrationContext` as its first parameter: \
                     write `async fn {}(ctx: OrchestrationContext, ...)`",
                    sig.ident
                ),
            ));
        }
    }
    let context_slots = match params.first() {
        Some(first) if first_may_be_context && may_be_context(kind, &first.ty) => 1,
        _ => 0,
    };
    if params.len() > MAX_INPUTS + context_slots {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "#[{kind}] functions take at most {MAX_INPUTS} inputs{}: gather them in a \
                 struct that derives `Serialize` and `Deserialize`",
                if kind == Kind::Activity {
                    " after the optional context"
                } else {
                    " after the context"
                }
            ),
        ));
    }
    let cfg_params = params.iter().filter(|param| !param.cfg.is_empty()).count();
    if cfg_params > MAX_CFG_PARAMS {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "#[{kind}] functions take at most {MAX_CFG_PARAMS} parameters under `#[cfg(..)]`"
            ),
        ));
    }
    let return_type = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            if let Some(err) = borrowed_part(kind, ty, Position::Output) {
                errors.push(err);
            }
            Some((**ty).clone())
        }
    };
    (errors.len() == before).then_some(Signature {
        params,
        first_may_be_context,
        return_type,
    })
}

/// Whether the first parameter may be the context, for counting inputs.
fn may_be_context(kind: Kind, ty: &Type) -> bool {
    last_segment_is(ty, kind.context()) || may_name_context(ty)
}

/// The predicates of a parameter's `#[cfg(..)]` attributes. Refuses `#[cfg_attr(.., cfg(..))]`,
/// whose effect the macro cannot know.
fn cfg_predicates(
    kind: Kind,
    attrs: &[Attribute],
    errors: &mut Vec<syn::Error>,
) -> Vec<proc_macro2::TokenStream> {
    let mut predicates = Vec::new();
    for attr in attrs {
        if attr.path().is_ident("cfg") {
            match attr.meta.require_list() {
                Ok(list) => predicates.push(list.tokens.clone()),
                Err(err) => errors.push(err),
            }
        } else if attr.path().is_ident("cfg_attr") {
            let mentions_cfg = attr.meta.require_list().is_ok_and(|list| {
                list.tokens.clone().into_iter().any(
                    |token| matches!(&token, proc_macro2::TokenTree::Ident(ident) if ident == "cfg"),
                )
            });
            if mentions_cfg {
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!(
                        "#[{kind}] cannot see through `cfg_attr` to a `cfg` on a parameter: \
                         write `#[cfg(all(..))]` instead"
                    ),
                ));
            }
        }
    }
    predicates
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Input,
    Output,
}

/// The success and error types `T` and `E` of a return type written `Result<T, E>`, whatever
/// its path.
///
/// Only `T` is recorded in history and decoded by the caller; `E` is shown through `Display`
/// and must be `'static` (which the compiler checks), so `Result<T, &'static str>` is as valid
/// as for a plain fn. (Reading the spelling here only narrows what the borrow check looks at:
/// success or failure is still decided by the type.)
fn result_types(ty: &mut Type) -> Option<(&mut Type, &mut Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let segment = path.path.segments.last_mut()?;
    if segment.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &mut segment.arguments else {
        return None;
    };
    let mut types = args.args.iter_mut().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let success = types.next()?;
    let error = types.next()?;
    Some((success, error))
}

/// The first part of `ty` that borrows (a reference, an elided or non-`'static` lifetime) or
/// hides its type (`impl Trait`), as an error at that part naming the owned type to write.
/// For an output written `Result<T, E>`, `E` may borrow for `'static`, but cannot be an
/// `impl Trait` (the registration names the type).
fn borrowed_part(kind: Kind, ty: &Type, position: Position) -> Option<syn::Error> {
    let mut finder = BorrowFinder::default();
    let mut checked = ty.clone();
    match result_types(&mut checked).filter(|_| position == Position::Output) {
        Some((success, error)) => {
            finder.visit_type(success);
            if finder.found.is_none() {
                finder.only_impl_trait = true;
                finder.visit_type(error);
            }
        }
        None => finder.visit_type(ty),
    }
    let found = finder.found?;
    let written = pretty(ty);
    Some(match found {
        Found::ImplTrait(tokens) => syn::Error::new_spanned(
            tokens,
            match position {
                Position::Input => {
                    format!("#[{kind}] inputs need a concrete serde type, not `impl Trait`")
                }
                Position::Output => {
                    format!("#[{kind}] must return a concrete serde type, not `impl Trait`")
                }
            },
        ),
        Found::ImplTraitError(tokens) => syn::Error::new_spanned(
            tokens,
            format!(
                "#[{kind}] must name its error type, not `impl Trait`: write the type \
                 (`String`, `&'static str`, your own error type)"
            ),
        ),
        Found::Borrow(tokens) => {
            let mut owned = ty.clone();
            match result_types(&mut owned).filter(|_| position == Position::Output) {
                Some((success, _)) => Owned.visit_type_mut(success),
                None => Owned.visit_type_mut(&mut owned),
            }
            let owned = pretty(&owned);
            let advice = if owned == written {
                "an owned type".to_string()
            } else {
                format!("`{owned}`")
            };
            syn::Error::new_spanned(
                tokens,
                match position {
                    Position::Input => format!(
                        "#[{kind}] inputs are deserialized from history and must be owned: \
                         take {advice} instead of {}",
                        if matches!(ty, Type::Reference(_)) {
                            "a reference".to_string()
                        } else {
                            format!("`{written}`")
                        }
                    ),
                    Position::Output => format!(
                        "#[{kind}] outputs are recorded in history and decoded by the caller, so \
                         they must be owned: return {advice} instead of `{written}`"
                    ),
                },
            )
        }
    })
}

/// The offending part of a type, as tokens so that the error underlines all of it.
enum Found {
    Borrow(proc_macro2::TokenStream),
    ImplTrait(proc_macro2::TokenStream),
    /// An `impl Trait` as the error type of a `Result`.
    ImplTraitError(proc_macro2::TokenStream),
}

#[derive(Default)]
struct BorrowFinder {
    found: Option<Found>,
    /// Looking at a `Result`'s error type: only `impl Trait` is refused there.
    only_impl_trait: bool,
}

impl<'ast> Visit<'ast> for BorrowFinder {
    fn visit_type(&mut self, ty: &'ast Type) {
        if self.found.is_some() {
            return;
        }
        match ty {
            Type::Reference(reference) if !self.only_impl_trait => {
                self.found = Some(Found::Borrow(reference.to_token_stream()))
            }
            Type::ImplTrait(imp) if self.only_impl_trait => {
                self.found = Some(Found::ImplTraitError(imp.to_token_stream()))
            }
            Type::ImplTrait(imp) => self.found = Some(Found::ImplTrait(imp.to_token_stream())),
            _ => syn::visit::visit_type(self, ty),
        }
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if self.found.is_none() && !self.only_impl_trait && lifetime.ident != "static" {
            self.found = Some(Found::Borrow(lifetime.to_token_stream()));
        }
    }
}

/// Rewrites a type to the owned form to suggest: `&str` → `String`, `&[T]` → `Vec<T>`,
/// `&T` → `T`, `Cow<'_, str>` → `String`.
struct Owned;

impl VisitMut for Owned {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        syn::visit_mut::visit_type_mut(self, ty);
        let replacement = match ty {
            Type::Reference(reference) => Some(owned_form(&reference.elem)),
            Type::Path(path) if path.qself.is_none() => {
                let segment = path.path.segments.last();
                match segment.map(|s| (&s.ident, &s.arguments)) {
                    Some((ident, PathArguments::AngleBracketed(args))) if ident == "Cow" => {
                        args.args.iter().find_map(|arg| match arg {
                            GenericArgument::Type(inner) => Some(owned_form(inner)),
                            _ => None,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *ty = replacement;
        }
    }
}

/// What to take instead of a borrowed `elem`: `String` for `str`, `Vec<T>` for `[T]`.
fn owned_form(elem: &Type) -> Type {
    match elem {
        Type::Path(path) if path.path.is_ident("str") => syn::parse_quote!(String),
        Type::Slice(slice) => {
            let inner = &slice.elem;
            syn::parse_quote!(Vec<#inner>)
        }
        other => other.clone(),
    }
}

/// A type as a user would write it (`Vec<&str>`, not `Vec < & str >`).
fn pretty(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut previous = None;
    while let Some(c) = chars.next() {
        if c == ' ' {
            let next = chars.peek().copied();
            let drop = matches!(previous, Some('<' | '&' | '(' | '[' | ':' | '\''))
                || matches!(next, Some('<' | '>' | ',' | ')' | ']' | ':' | ';'));
            let keep_after_arrow_or_keyword = matches!(previous, Some('>'))
                && matches!(next, Some(c) if c.is_alphanumeric() || c == '_');
            if drop && !keep_after_arrow_or_keyword {
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

#[cfg(test)]
mod tests {
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
}
