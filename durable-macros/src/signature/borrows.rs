//! Finding what a signature borrows: a reference, lifetime or `impl Trait` nested in an input or
//! output type cannot cross the durable boundary, and the error names the owned form to use.

use super::Kind;
use quote::ToTokens;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{GenericArgument, Lifetime, PathArguments, Type};

/// Where a type appears in the signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
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
pub(super) fn borrowed_part(kind: Kind, ty: &Type, position: Position) -> Option<syn::Error> {
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
pub(super) fn pretty(ty: &Type) -> String {
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
