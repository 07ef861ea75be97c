//! Function-style entities: `async fn name(ctx: &mut EntityContext<S>)`, returning `()` or
//! `Result<(), E>` with `E: Display`.

use super::{Options, private, register, registered_name};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Type};

// Input:
//     #[entity] async fn counter(ctx: &mut EntityContext<i64>) -> Result<(), EntityError> { .. }
// Output: the function as written, then
//     const _: () = {
//         fn __durable_entity_body<'c>(ctx: &'c mut EntityContext<i64>)
//             -> Pin<Box<dyn Future<Output = Result<(), EntityError>> + Send + 'c>> {
//             Box::pin(async move { EntityReturn::into_outcome(counter(ctx).await) })
//         }
//         fn __durable_entity_new() -> Box<dyn EntityBehavior> {
//             FunctionEntity::boxed(__durable_entity_body)
//         }
//         inventory::submit! { EntityRegistration { name: "counter", new: .., location: .. } }
//     };
pub(super) fn expand(options: &Options, item: ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            "an #[entity] function must be `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "an #[entity] function cannot be generic: its state type must be known",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span(),
            "an #[entity] function cannot be `unsafe`",
        ));
    }
    let context = match sig.inputs.iter().collect::<Vec<_>>().as_slice() {
        [FnArg::Typed(param)] => match &*param.ty {
            Type::Reference(reference) if reference.mutability.is_some() => {
                Some((*reference.elem).clone())
            }
            other => {
                errors.push(syn::Error::new(
                    other.span(),
                    "the parameter of an #[entity] function is `&mut EntityContext<State>`",
                ));
                None
            }
        },
        _ => {
            errors.push(syn::Error::new(
                sig.inputs.span().join(sig.paren_token.span.join()).unwrap_or(sig.ident.span()),
                "an #[entity] function takes exactly one parameter, `ctx: &mut EntityContext<State>`",
            ));
            None
        }
    };
    if let Some(first) = errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    }) {
        return Err(first);
    }
    let Some(context) = context else {
        return Err(syn::Error::new(sig.ident.span(), "no context parameter"));
    };
    let private = private();
    let function = &sig.ident;
    let name = registered_name(
        options,
        function.to_string().trim_start_matches("r#").to_string(),
    );
    let body = Ident::new("__durable_entity_body", Span::mixed_site());
    let new = Ident::new("__durable_entity_new", Span::mixed_site());
    let ctx = Ident::new("__durable_ctx", Span::mixed_site());
    let return_span = match &sig.output {
        syn::ReturnType::Default => function.span(),
        syn::ReturnType::Type(_, ty) => ty.span(),
    };
    // At the return type: one that is neither `()` nor `Result<(), E: Display>` is reported
    // there.
    let outcome = quote_spanned! {return_span=>
        #private::EntityReturn::into_outcome(#function(#ctx).await)
    };
    let registration = register(&name, &new);
    Ok(quote! {
        #item

        const _: () = {
            fn #body<'c>(
                #ctx: &'c mut #context,
            ) -> ::core::pin::Pin<::std::boxed::Box<
                dyn ::core::future::Future<
                    Output = ::core::result::Result<(), ::durable_runtime::EntityError>,
                > + ::core::marker::Send + 'c,
            >> {
                ::std::boxed::Box::pin(async move { #outcome })
            }

            fn #new() -> ::std::boxed::Box<dyn #private::EntityBehavior> {
                #private::FunctionEntity::boxed(#body)
            }

            #registration
        };
    })
}
