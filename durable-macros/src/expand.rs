//! Writing the code an annotated function turns into: the function itself, unchanged, and a
//! registration next to it.

use crate::attr;
use crate::determinism;
use crate::placement;
use crate::signature::{self, Kind, Param, Signature};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn};

/// Entry point shared by both attributes: parse, validate, then expand or report.
pub(crate) fn function(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemFn = match syn::parse2(item.clone()) {
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
    let mut errors = determinism::take_from_signature(kind, &mut item);
    let options = match attr::parse(kind, args) {
        Ok(options) => Some(options),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let mut signature = signature::check(kind, &item, &mut errors);
    if signature.is_some()
        && let Some(self_ty) = placement::enclosing_impl(kind, &item.sig.ident)
    {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "#[{kind}] applies to a free function, not to an associated function of `impl \
                 {self_ty}`: move `{}` out of the `impl` block, to module level",
                item.sig.ident
            ),
        ));
        signature = None;
    }
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
        errors.extend(determinism::check(
            &item.sig.ident,
            &item.block,
            &inputs,
            &file,
        ));
    }
    determinism::strip_escape_hatches(&mut item.block);
    let compile_errors: Vec<TokenStream> =
        errors.iter().map(syn::Error::to_compile_error).collect();
    match (options, signature) {
        // A sound signature still registers, so that a determinism error does not cascade
        // into errors at every use of the function.
        (Some(options), Some(signature)) => {
            let registration = registration(kind, &options, &signature, &item);
            quote! {
                #(#compile_errors)*
                #item
                #registration
            }
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

/// The path to the generated code's helpers, located at `span`: an expression that names a
/// helper through it is reported at `span` (interpolating `private()` would keep the
/// attribute's location).
fn private_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::durable_runtime::__private)
}

// Input:
//     #[activity] pub async fn say_hello(city: String) -> Result<String, ActivityError> { .. }
// Output: the function as written, then
//     const _: () = {
//         fn __durable_invoke(ctx: ActivityContext, input: Payload) -> BoxFuture<..> {
//             Box::pin(async move {
//                 let returned = {
//                     let mut inputs = Inputs::new("activity", "say_hello", &input);
//                     let arg0 = <String as ActivityParam>::take_first(ctx, &mut inputs, 0)?;
//                     let call = say_hello(arg0);
//                     call
//                 }.await;
//                 finish("activity", "say_hello",
//                        outcome::<Result<String, ActivityError>>(returned))
//             })
//         }
//         inventory::submit! {
//             ActivityRegistration { name: "say_hello", invoke: __durable_invoke,
//                                    function: type_id_of(&say_hello), location: .. }
//         }
//     };
// The typed call `ctx.call_activity(say_hello, city)` finds the registration by the type of the
// function item `say_hello`. Orchestrators get the same shape with a factory that decodes the
// input before building the future.
fn registration(
    kind: Kind,
    options: &attr::Options,
    sig: &Signature,
    item: &ItemFn,
) -> TokenStream {
    let private = private();
    let function = &item.sig.ident;
    let registered_name = match &options.name {
        Some(name) => name.value(),
        None => function.to_string().trim_start_matches("r#").to_string(),
    };
    let kind_str = kind.to_string();
    let ctx = Ident::new("__durable_ctx", Span::mixed_site());
    let input = Ident::new("__durable_input", Span::mixed_site());
    let inputs = Ident::new("__durable_inputs", Span::mixed_site());
    let call = Ident::new("__durable_call", Span::mixed_site());

    let make_call = Call {
        kind,
        sig,
        function,
        registered_name: &registered_name,
        ctx: &ctx,
        input: &input,
        inputs: &inputs,
        call: &call,
    }
    .to_tokens();
    let finish_span = sig
        .return_type
        .as_ref()
        .map_or_else(|| function.span(), Spanned::span);
    // Located at the return type, with the return type named in the call, so that an output
    // that is not serde, or neither a `Result` nor a plain output, is reported there. (The
    // name resolves at the call site: a mixed-site name is reported at the attribute. Nothing
    // of the user's shares the generated function's scope.)
    let returned = Ident::new(
        "__durable_returned",
        Span::call_site().located_at(finish_span),
    );
    let private_at_return = private_at(finish_span);
    let return_type = match &sig.return_type {
        Some(ty) => quote!(#ty),
        None => quote_spanned!(finish_span=> ()),
    };
    let kind_lit = syn::LitStr::new(&kind_str, finish_span);
    let name_lit = syn::LitStr::new(&registered_name, finish_span);
    let finish = quote_spanned! {finish_span=>
        #private_at_return::finish(
            #kind_lit,
            #name_lit,
            #private_at_return::outcome::<#return_type>(#returned),
        )
    };
    let future_span = function.span();

    let register = match kind {
        Kind::Activity => {
            let invoke = quote_spanned! {future_span=>
                ::std::boxed::Box::pin(async move {
                    let #returned = #make_call.await;
                    #finish
                })
            };
            quote! {
                fn __durable_invoke(
                    #ctx: ::durable_runtime::ActivityContext,
                    #input: #private::Payload,
                ) -> #private::BoxFuture<
                    ::core::result::Result<#private::Payload, #private::FailureDetails>,
                > {
                    #invoke
                }

                #private::inventory::submit! {
                    #private::ActivityRegistration {
                        name: #registered_name,
                        invoke: __durable_invoke,
                        function: #private::type_id_of(&#function),
                        location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                    }
                }
            }
        }
        Kind::Orchestrator => {
            let version = match &options.version {
                Some(version) => quote!(::core::option::Option::Some(#version)),
                None => quote!(::core::option::Option::None),
            };
            let future = quote_spanned! {future_span=>
                ::std::boxed::Box::pin(async move {
                    let #returned = #call.await;
                    #finish
                })
            };
            quote! {
                fn __durable_start(
                    #ctx: ::durable_runtime::OrchestrationContext,
                    #input: #private::Payload,
                ) -> ::core::result::Result<
                    #private::BoxFuture<
                        ::core::result::Result<#private::Payload, #private::FailureDetails>,
                    >,
                    #private::FailureDetails,
                > {
                    let #call = #make_call;
                    ::core::result::Result::Ok(#future)
                }

                #private::inventory::submit! {
                    #private::OrchestratorRegistration {
                        name: #registered_name,
                        version: #version,
                        start: __durable_start,
                        function: #private::type_id_of(&#function),
                        location: ::core::concat!(::core::file!(), ":", ::core::line!()),
                    }
                }
            }
        }
    };
    // Attributes the registration must share with the function: a `#[cfg]` on the function
    // removes both; a deprecated function is used here without a warning (the user's uses
    // still warn); a lint the function allows (or expects) is allowed here too, since the
    // registration repeats the signature's types.
    let cfgs = item.attrs.iter().filter(|attr| attr.path().is_ident("cfg"));
    let allow_deprecated = item
        .attrs
        .iter()
        .any(|attr| {
            attr.path().is_ident("deprecated")
                || (attr.path().is_ident("cfg_attr")
                    && mentions(attr.meta.to_token_stream(), "deprecated"))
        })
        .then(|| quote!(#[allow(deprecated)]));
    let allowed = item.attrs.iter().filter_map(allowed_lints);
    quote! {
        #(#cfgs)*
        #allow_deprecated
        #(#allowed)*
        const _: () = {
            #register
        };
    }
}

/// The lints a function's attribute allows, as an `#[allow(..)]` for the registration:
/// `#[allow(..)]` as it is, `#[expect(..)]` as an allow (the registration must not fulfil or
/// break the expectation), and `#[cfg_attr(pred, ..)]` of those under the same predicate.
fn allowed_lints(attr: &syn::Attribute) -> Option<TokenStream> {
    fn allow(meta: &syn::Meta) -> Option<TokenStream> {
        let list = meta.require_list().ok()?;
        (list.path.is_ident("allow") || list.path.is_ident("expect")).then(|| {
            let lints = &list.tokens;
            quote!(allow(#lints))
        })
    }
    if attr.path().is_ident("cfg_attr") {
        let list = attr.meta.require_list().ok()?;
        let parser = |input: syn::parse::ParseStream| {
            let predicate: syn::Meta = input.parse()?;
            input.parse::<syn::Token![,]>()?;
            let attrs =
                syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated(input)?;
            Ok((predicate, attrs))
        };
        let (predicate, attrs) = syn::parse::Parser::parse2(parser, list.tokens.clone()).ok()?;
        let allows: Vec<TokenStream> = attrs.iter().filter_map(allow).collect();
        (!allows.is_empty()).then(|| quote!(#[cfg_attr(#predicate, #(#allows),*)]))
    } else {
        allow(&attr.meta).map(|allow| quote!(#[#allow]))
    }
}

/// Whether `tokens` hold the identifier `name`, at any depth.
fn mentions(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|token| match token {
        proc_macro2::TokenTree::Ident(ident) => ident == name,
        proc_macro2::TokenTree::Group(group) => mentions(group.stream(), name),
        _ => false,
    })
}

/// A block that decodes the parameters from `input` and evaluates to the function's future
/// (not awaited). Each parameter is decoded by a statement at its own type, so a type that is
/// not serde is reported there; a parameter under `#[cfg]` is decoded under the same `#[cfg]`,
/// and the call is written once per combination of those.
struct Call<'a> {
    kind: Kind,
    sig: &'a Signature,
    function: &'a Ident,
    registered_name: &'a str,
    ctx: &'a Ident,
    input: &'a Ident,
    inputs: &'a Ident,
    call: &'a Ident,
}

impl Call<'_> {
    fn to_tokens(&self) -> TokenStream {
        let private = private();
        let Call {
            kind,
            sig,
            function,
            registered_name,
            ctx,
            input,
            inputs,
            call,
        } = self;
        let kind_str = kind.to_string();
        let rest = Ident::new("__durable_rest", Span::mixed_site());
        let args: Vec<Ident> = (0..sig.params.len())
            .map(|i| format_ident!("__durable_arg{}", i, span = Span::mixed_site()))
            .collect();
        let mut statements = Vec::new();

        // How many parameters follow the first (or, if the first cannot be the context, how
        // many there are in all), counting those compiled in.
        let counted: &[Param] = if sig.first_may_be_context {
            &sig.params[1..]
        } else {
            &sig.params
        };
        let unconditional = counted.iter().filter(|p| p.cfg.is_empty()).count();
        let conditional: Vec<&Param> = counted.iter().filter(|p| !p.cfg.is_empty()).collect();
        statements.push(quote!(let #rest: usize = #unconditional;));
        for param in conditional {
            let predicates = &param.cfg;
            statements.push(quote!(#[cfg(all(#(#predicates),*))] let #rest = #rest + 1;));
        }
        if !sig.first_may_be_context {
            statements.push(quote!(let _ = #ctx; #inputs.begin(#rest)?;));
        }

        for (index, (param, arg)) in sig.params.iter().zip(&args).enumerate() {
            let ty = &param.ty;
            let span = ty.span();
            let predicates = &param.cfg;
            let cfg = (!predicates.is_empty()).then(|| quote!(#[cfg(all(#(#predicates),*))]));
            let private = private_at(span);
            let take = if index == 0 && sig.first_may_be_context {
                let param_trait = match kind {
                    Kind::Activity => quote_spanned!(span=> #private::ActivityParam),
                    Kind::Orchestrator => quote_spanned!(span=> #private::OrchestrationParam),
                };
                quote_spanned! {span=>
                    <#ty as #param_trait>::take_first(#ctx, &mut #inputs, #rest)?
                }
            } else {
                quote_spanned!(span=> #inputs.take::<#ty>()?)
            };
            statements.push(quote!(#cfg let #arg = #take;));
        }

        // The call, once per combination of the parameters under `#[cfg]`.
        let conditional: Vec<usize> = (0..sig.params.len())
            .filter(|&i| !sig.params[i].cfg.is_empty())
            .collect();
        for mask in 0..(1usize << conditional.len()) {
            let included = |i: usize| match conditional.iter().position(|&c| c == i) {
                Some(bit) => mask & (1 << bit) != 0,
                None => true,
            };
            let passed = args
                .iter()
                .enumerate()
                .filter(|(i, _)| included(*i))
                .map(|(_, arg)| arg);
            let cfg = (!conditional.is_empty()).then(|| {
                let conditions = conditional.iter().enumerate().map(|(bit, &i)| {
                    let predicates: &[TokenStream] = &sig.params[i].cfg;
                    if mask & (1 << bit) != 0 {
                        quote!(all(#(#predicates),*))
                    } else {
                        quote!(not(all(#(#predicates),*)))
                    }
                });
                quote!(#[cfg(all(#(#conditions),*))])
            });
            statements.push(quote!(#cfg let #call = #function(#(#passed),*);));
        }
        quote! {
            {
                let mut #inputs = #private::Inputs::new(#kind_str, #registered_name, &#input);
                #(#statements)*
                #call
            }
        }
    }
}
