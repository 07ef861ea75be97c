//! Reading and checking the annotated function's signature.

use quote::ToTokens;
use std::fmt;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

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

/// What the function returns, as far as the runtime cares.
pub(crate) enum Returns {
    /// `Result<T, E>` (or an alias such as `anyhow::Result<T>`): `T` is the output.
    Result(Type),
    /// A plain value.
    Plain(Type),
}

/// The parts of the signature that the expansion needs.
pub(crate) struct Signature {
    /// Whether the first parameter is the context.
    pub takes_context: bool,
    /// The context parameter's type, as written.
    pub context_type: Option<Type>,
    /// Input parameter types, after the context.
    pub inputs: Vec<Type>,
    pub returns: Returns,
    /// The declared return type (`()` when none).
    pub return_type: Type,
}

fn context_type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Activity => "ActivityContext",
        Kind::Orchestrator => "OrchestrationContext",
    }
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
    let context = context_type_name(kind);
    let mut takes_context = false;
    let mut context_type = None;
    let mut inputs = Vec::new();
    let mut typed_index = 0;
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                format!("#[{kind}] must be a free function, not a method: remove `self`"),
            )),
            FnArg::Typed(typed) => {
                let is_context = last_segment_is(&typed.ty, context);
                typed_index += 1;
                if is_context && typed_index == 1 {
                    takes_context = true;
                    context_type = Some((*typed.ty).clone());
                } else if is_context {
                    errors.push(syn::Error::new_spanned(
                        &typed.ty,
                        format!("`{context}` must be the first parameter"),
                    ));
                } else if let Type::Reference(reference) = &*typed.ty {
                    errors.push(syn::Error::new_spanned(
                        reference,
                        format!(
                            "#[{kind}] inputs are deserialized from history and must be owned: \
                             take `{}` instead of a reference",
                            owned_form(&reference.elem)
                        ),
                    ));
                } else if let Type::ImplTrait(imp) = &*typed.ty {
                    errors.push(syn::Error::new_spanned(
                        imp,
                        format!("#[{kind}] inputs need a concrete serde type, not `impl Trait`"),
                    ));
                } else {
                    inputs.push((*typed.ty).clone());
                }
            }
        }
    }
    if kind == Kind::Orchestrator && !takes_context {
        let span = sig
            .inputs
            .first()
            .map(syn::spanned::Spanned::span)
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
    let return_type: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::ImplTrait(imp) = &return_type {
        errors.push(syn::Error::new_spanned(
            imp,
            format!("#[{kind}] must return a concrete serde type, not `impl Trait`"),
        ));
    }
    let returns = match result_ok_type(&return_type) {
        Some(ok) => Returns::Result(ok),
        None => Returns::Plain(return_type.clone()),
    };
    (errors.len() == before).then_some(Signature {
        takes_context,
        context_type,
        inputs,
        returns,
        return_type,
    })
}

/// What to take instead of a borrowed `elem`: `String` for `str`, `Vec<T>` for `[T]`.
fn owned_form(elem: &Type) -> String {
    match elem {
        Type::Path(path) if path.path.is_ident("str") => "String".to_string(),
        Type::Slice(slice) => format!("Vec<{}>", slice.elem.to_token_stream()),
        other => other.to_token_stream().to_string(),
    }
}

/// `T` in `Result<T, E>` / `Result<T>`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}
