//! Writing the code an annotated function turns into.

use crate::attr;
use crate::determinism;
use crate::signature::{self, Kind, Returns, Signature};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, ItemFn};

/// Entry point shared by both attributes: parse, validate, then expand or report.
pub(crate) fn function(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(err) => {
            let err = syn::Error::new(
                err.span(),
                format!("#[{kind}] applies to an `async fn`: {err}"),
            );
            let compile_error = err.to_compile_error();
            return quote! { #compile_error #item };
        }
    };
    let mut errors = Vec::new();
    let options = match attr::parse(kind, args) {
        Ok(options) => Some(options),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let signature = signature::check(kind, &item, &mut errors);
    if kind == Kind::Orchestrator {
        let inputs: Vec<&syn::PatType> = item
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                syn::FnArg::Typed(typed) => Some(typed),
                syn::FnArg::Receiver(_) => None,
            })
            .collect();
        let file = determinism::FileScope::of_invocation();
        errors.extend(determinism::check(&item.block, &inputs, &file));
    }
    let mut item = item;
    determinism::strip_escape_hatches(&mut item.block);
    let compile_errors: Vec<TokenStream> =
        errors.iter().map(syn::Error::to_compile_error).collect();
    match (options, signature) {
        // A sound signature still expands, so that a determinism error does not cascade into
        // errors at every use of the handle.
        (Some(options), Some(signature)) => {
            let expanded = expand(kind, &options, &signature, item);
            quote! { #(#compile_errors)* #expanded }
        }
        _ => quote! {
            #(#compile_errors)*
            #[allow(dead_code)]
            #item
        },
    }
}

fn private() -> TokenStream {
    quote!(::durable_runtime::__private)
}

// Input:
//     #[activity] pub async fn say_hello(city: String) -> Result<String, ActivityError> { .. }
// Output:
//     pub struct say_hello;                        // the typed handle, callable like the fn
//     const _: () = {
//         async fn __durable_body(city: String) -> Result<String, ActivityError> { .. }
//         impl Activity for say_hello { type Input = String; type Output = String; .. }
//         impl Deref for say_hello { type Target = fn(String) -> BoxFuture<..>; .. }
//         fn __durable_invoke(ctx, payload) -> BoxFuture<Result<Payload, FailureDetails>> { .. }
//         inventory::submit! { ActivityRegistration { .. } }
//     };
// Orchestrators get the same shape with `Orchestrator`, a factory instead of an invoker, and no
// `Deref` (they run only under a runtime).
fn expand(kind: Kind, options: &attr::Options, sig: &Signature, item: ItemFn) -> TokenStream {
    let private = private();
    let ItemFn {
        attrs,
        vis,
        sig: user_sig,
        block,
    } = item;
    let handle = user_sig.ident.clone();
    let registered_name = match &options.name {
        Some(name) => name.value(),
        None => handle.to_string().trim_start_matches("r#").to_string(),
    };
    let version = match &options.version {
        Some(version) => quote!(::core::option::Option::Some(#version)),
        None => quote!(::core::option::Option::None),
    };
    let (doc_attrs, other_attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|attr| attr.path().is_ident("doc"));

    let body_fn = Ident::new("__durable_body", Span::mixed_site());
    let mut body_sig = user_sig.clone();
    body_sig.ident = body_fn.clone();

    let input_types = &sig.inputs;
    let input_type = match input_types.as_slice() {
        [single] => quote!(#single),
        many => quote!((#(#many,)*)),
    };
    let args: Vec<Ident> = (0..input_types.len())
        .map(|i| format_ident!("__durable_arg{}", i, span = Span::mixed_site()))
        .collect();
    let args_pattern = match args.as_slice() {
        [single] => quote!(#single),
        many => quote!((#(#many,)*)),
    };
    let (output_type, outcome) = match &sig.returns {
        Returns::Result(ok) => (ok.clone(), quote!(#private::IntoOutcome::into_outcome)),
        Returns::Plain(ty) => (ty.clone(), quote!(#private::plain)),
    };
    let return_type = &sig.return_type;
    let kind_str = kind.to_string();
    let ctx = Ident::new("__durable_ctx", Span::mixed_site());
    let input = Ident::new("__durable_input", Span::mixed_site());
    let ctx_arg = sig.takes_context.then(|| quote!(#ctx,));

    let handle_doc = if doc_attrs.is_empty() {
        let text = format!(" The {kind} `{registered_name}`.");
        quote!(#[doc = #text])
    } else {
        quote!(#(#doc_attrs)*)
    };
    let struct_def = quote! {
        #handle_doc
        #[allow(non_camel_case_types, dead_code)]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug, ::core::default::Default)]
        #vis struct #handle;
    };

    let decode_and_run = quote! {
        let #args_pattern: #input_type = #private::decode_input(#kind_str, #registered_name, &#input)?;
        let __durable_ret: #return_type = #body_fn(#ctx_arg #(#args),*).await;
        #private::encode_output(#kind_str, #registered_name, #outcome(__durable_ret))
    };

    let specific = match kind {
        Kind::Activity => {
            let context_type = sig.context_type.iter();
            let call = Ident::new("__durable_call", Span::mixed_site());
            let fn_ptr = quote! {
                fn(#(#context_type,)* #(#input_types),*) -> #private::BoxFuture<#return_type>
            };
            let params: Vec<_> = sig
                .context_type
                .iter()
                .map(|ty| quote!(#ctx: #ty))
                .chain(
                    input_types
                        .iter()
                        .zip(&args)
                        .map(|(ty, arg)| quote!(#arg: #ty)),
                )
                .collect();
            let ctx_param = if sig.takes_context {
                quote!(#ctx)
            } else {
                quote!(_)
            };
            quote! {
                impl ::durable_runtime::Activity for #handle {
                    type Input = #input_type;
                    type Output = #output_type;
                    const NAME: &'static str = #registered_name;
                }

                fn #call(#(#params),*) -> #private::BoxFuture<#return_type> {
                    ::std::boxed::Box::pin(#body_fn(#ctx_arg #(#args),*))
                }

                // Lets the handle be called like the original function: `say_hello(x).await`.
                impl ::core::ops::Deref for #handle {
                    type Target = #fn_ptr;
                    fn deref(&self) -> &Self::Target {
                        const CALL: #fn_ptr = #call;
                        &CALL
                    }
                }

                fn __durable_invoke(
                    #ctx_param: ::durable_runtime::ActivityContext,
                    #input: #private::Payload,
                ) -> #private::BoxFuture<::core::result::Result<#private::Payload, #private::FailureDetails>> {
                    ::std::boxed::Box::pin(async move { #decode_and_run })
                }

                #private::inventory::submit! {
                    #private::ActivityRegistration {
                        name: #registered_name,
                        invoke: __durable_invoke,
                        location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                    }
                }
            }
        }
        Kind::Orchestrator => quote! {
            impl ::durable_runtime::Orchestrator for #handle {
                type Input = #input_type;
                type Output = #output_type;
                const NAME: &'static str = #registered_name;
                const VERSION: ::core::option::Option<&'static str> = #version;
            }

            fn __durable_start(
                #ctx: ::durable_runtime::OrchestrationContext,
                #input: #private::Payload,
            ) -> ::core::result::Result<
                #private::BoxFuture<::core::result::Result<#private::Payload, #private::FailureDetails>>,
                #private::FailureDetails,
            > {
                let #args_pattern: #input_type = #private::decode_input(#kind_str, #registered_name, &#input)?;
                ::core::result::Result::Ok(::std::boxed::Box::pin(async move {
                    let __durable_ret: #return_type = #body_fn(#ctx, #(#args),*).await;
                    #private::encode_output(#kind_str, #registered_name, #outcome(__durable_ret))
                }))
            }

            #private::inventory::submit! {
                #private::OrchestratorRegistration {
                    name: #registered_name,
                    version: #version,
                    start: __durable_start,
                    location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                }
            }
        },
    };
    quote! {
        #struct_def

        const _: () = {
            #(#other_attrs)*
            #body_sig #block

            #specific
        };
    }
}
