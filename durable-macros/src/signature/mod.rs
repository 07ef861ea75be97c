//! Reading and checking the annotated function's signature.
//!
//! What can be decided from the tokens is decided here, with one error at the offending token:
//! `async`, no generics, no `unsafe`, owned inputs and output (no reference, elided lifetime or
//! `impl Trait` anywhere inside them), where the context goes. What needs types (is this input
//! a serde type, is this first parameter the context under another name, is the return type a
//! `Result`) is left to the compiler, through traits the generated code names at the user's
//! tokens.

use std::fmt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ItemFn, ReturnType, Type};

mod borrows;
use borrows::{Position, borrowed_part};

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

#[cfg(test)]
mod tests;
