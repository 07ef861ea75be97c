//! Impl-style entities: `#[entity] impl Type { pub fn op(&mut self, ..) .. }`.
//!
//! Every `pub fn` is an operation: `&mut self` changes the state, `&self` reads it, `self` by
//! value deletes it (the entity has no state afterwards). Its inputs (owned serde types) are
//! the operation's input: none, one (sent as itself) or several (sent as a tuple). It returns
//! a serde type (the result), or `Result<T, E>` with `E: Display` (an `Err` fails the
//! operation). It may be `async`. It may take `ops: &mut EntityOps` first after the receiver,
//! to signal entities and start orchestrations (sent with its commit); it is not part of the
//! input.

use super::{Options, private, register, registered_name};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type, Visibility};

/// How an operation takes the state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiver {
    /// `&self`: reads it.
    Read,
    /// `&mut self`: changes it.
    Write,
    /// `self`: consumes it (deletes the state).
    Consume,
}

/// One operation, as the expansion needs it.
struct Op {
    method: Ident,
    name: String,
    receiver: Receiver,
    inputs: Vec<Type>,
    /// Takes `ops: &mut EntityOps` (first after the receiver): it may signal entities and
    /// start orchestrations.
    takes_ops: bool,
    is_async: bool,
    /// `Some(T)` if it returns `Result<T, E>`.
    ok_type: Option<Type>,
    output: Type,
    vis: Visibility,
    span: Span,
}

// Input:
//     #[entity] impl Counter { pub fn add(&mut self, n: i64) { .. } pub fn get(&self) -> i64 { .. } }
// Output: the block as written, then
//     impl Counter {
//         pub const ENTITY_NAME: &'static str = "counter";
//         pub fn entity_id(key: impl Into<String>) -> EntityId { .. }
//         pub fn add_op(n: i64) -> Operation<()> { Operation::typed("counter", "add", n) }
//         pub fn get_op() -> Operation<i64> { .. }
//     }
//     const _: () = {
//         fn __durable_dispatch<'a>(state: &'a mut Option<Counter>, call: OperationCall<'a>)
//             -> OperationFuture<'a> {
//             Box::pin(async move { match call.name { "add" => { .. } .. } })
//         }
//         fn __durable_entity_new() -> Box<dyn EntityBehavior> { ImplEntity::boxed(..) }
//         inventory::submit! { EntityRegistration { .. } }
//     };
pub(super) fn expand(options: &Options, block: ItemImpl) -> syn::Result<TokenStream> {
    if let Some((_, path, _)) = &block.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "#[entity] applies to an inherent `impl Type { .. }` block, not a trait impl",
        ));
    }
    if !block.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &block.generics,
            "an #[entity] type cannot be generic: its state type must be known",
        ));
    }
    let self_ty = &block.self_ty;
    let type_name = match &**self_ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .unwrap_or_default(),
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[entity] applies to an `impl` of a named struct or enum",
            ));
        }
    };
    let name = registered_name(options, snake_case(&type_name));
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut ops = Vec::new();
    for item in &block.items {
        if let ImplItem::Fn(method) = item
            && matches!(method.vis, Visibility::Public(_))
        {
            match operation(method) {
                Ok(op) => ops.push(op),
                Err(err) => errors.push(err),
            }
        }
    }
    if ops.is_empty() && errors.is_empty() {
        errors.push(syn::Error::new_spanned(
            self_ty,
            "an #[entity] impl needs at least one operation: a `pub fn` taking `&self`, \
             `&mut self` or `self`",
        ));
    }
    if let Some(all) = errors.into_iter().reduce(|mut all, next| {
        all.combine(next);
        all
    }) {
        return Err(all);
    }
    let private = private();
    let proxies = ops.iter().map(|op| proxy(op, &name));
    let arms = ops.iter().map(|op| arm(op, self_ty, &name));
    let dispatch = Ident::new("__durable_dispatch", Span::mixed_site());
    let new = Ident::new("__durable_entity_new", Span::mixed_site());
    let state = Ident::new("__durable_state", Span::mixed_site());
    let call = Ident::new("__durable_call", Span::mixed_site());
    let registration = register(&name, &new);
    let doc_name = format!("The name `{type_name}` is registered under: `{name}`.");
    Ok(quote! {
        #block

        /// Typed operations of the entity (each checks its name and input type at compile
        /// time), and its ids.
        #[allow(dead_code)]
        impl #self_ty {
            #[doc = #doc_name]
            pub const ENTITY_NAME: &'static str = #name;

            /// The id of this entity with `key`.
            pub fn entity_id(key: impl ::core::convert::Into<::std::string::String>)
                -> ::durable_runtime::EntityId
            {
                ::durable_runtime::EntityId::new(#name, key)
            }

            #(#proxies)*
        }

        const _: () = {
            fn #dispatch<'a>(
                #state: &'a mut ::core::option::Option<#self_ty>,
                #call: #private::OperationCall<'a>,
            ) -> #private::OperationFuture<'a> {
                ::std::boxed::Box::pin(async move {
                    match #call.name {
                        #(#arms)*
                        _ => ::core::result::Result::Err(
                            #private::unknown_operation(#name, #call.name),
                        ),
                    }
                })
            }

            fn #new() -> ::std::boxed::Box<dyn #private::EntityBehavior> {
                #private::ImplEntity::<#self_ty>::boxed(#dispatch)
            }

            #registration
        };
    })
}

/// Reads one `pub fn` as an operation, or says why it cannot be one.
fn operation(method: &ImplItemFn) -> syn::Result<Op> {
    let sig = &method.sig;
    let receiver = match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => match (&receiver.reference, &receiver.mutability) {
            (Some(_), Some(_)) => Receiver::Write,
            (Some(_), None) => Receiver::Read,
            (None, _) if matches!(&*receiver.ty, Type::Path(_)) => Receiver::Consume,
            _ => {
                return Err(syn::Error::new_spanned(
                    receiver,
                    "an entity operation takes `&self`, `&mut self` or `self`",
                ));
            }
        },
        _ => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!(
                    "every `pub fn` of an #[entity] impl is an operation, and takes `&self`, \
                     `&mut self` or `self`; make `{}` private or move it to another impl block",
                    sig.ident
                ),
            ));
        }
    };
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "an entity operation cannot be generic: its input type must be known",
        ));
    }
    let mut inputs = Vec::new();
    let mut takes_ops = false;
    for (position, arg) in sig.inputs.iter().skip(1).enumerate() {
        if let FnArg::Typed(typed) = arg {
            if let Type::Reference(reference) = &*typed.ty
                && names_entity_ops(&reference.elem)
            {
                if position != 0 || reference.mutability.is_none() {
                    return Err(syn::Error::new_spanned(
                        reference,
                        "an entity operation takes its side effects as its first parameter \
                         after the receiver, `ops: &mut EntityOps`",
                    ));
                }
                takes_ops = true;
                continue;
            }
            if let Type::Reference(reference) = &*typed.ty {
                return Err(syn::Error::new_spanned(
                    reference,
                    "an entity operation's input is sent as JSON: take an owned type \
                     (`String`, not `&str`)",
                ));
            }
            inputs.push((*typed.ty).clone());
        }
    }
    let output: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let name = sig.ident.to_string().trim_start_matches("r#").to_string();
    Ok(Op {
        method: sig.ident.clone(),
        ok_type: result_ok_type(&output),
        name,
        receiver,
        inputs,
        takes_ops,
        is_async: sig.asyncness.is_some(),
        output,
        vis: method.vis.clone(),
        span: sig.ident.span(),
    })
}

/// Whether `ty` is written `EntityOps` (any path ending in it).
fn names_entity_ops(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|segment| segment.ident == "EntityOps"))
}

/// `T` if `ty` is written `Result<T, E>` (any path ending in `Result` with two arguments).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        syn::GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let ok = types.next()?;
    types.next().map(|_| ok)
}

/// The typed operation `<method>_op(inputs..) -> Operation<R>`.
fn proxy(op: &Op, entity: &str) -> TokenStream {
    let Op {
        method,
        name,
        inputs,
        vis,
        span,
        ..
    } = op;
    let proxy = format_ident!("{}_op", method.to_string().trim_start_matches("r#"));
    let args: Vec<Ident> = (0..inputs.len())
        .map(|i| format_ident!("input{}", i))
        .collect();
    let result = op.ok_type.as_ref().unwrap_or(&op.output);
    let input = match args.as_slice() {
        [] => quote!(()),
        [one] => quote!(#one),
        many => quote!((#(#many,)*)),
    };
    let doc = format!("The operation `{name}` of entity `{entity}`, typed.");
    quote_spanned! {*span=>
        #[doc = #doc]
        #vis fn #proxy(#(#args: #inputs),*) -> ::durable_runtime::Operation<#result> {
            ::durable_runtime::Operation::typed(#entity, #name, #input)
        }
    }
}

/// The dispatch arm of one operation.
fn arm(op: &Op, self_ty: &Type, entity: &str) -> TokenStream {
    let private = private();
    let state = Ident::new("__durable_state", Span::mixed_site());
    let call = Ident::new("__durable_call", Span::mixed_site());
    let this = Ident::new("__durable_this", Span::mixed_site());
    let name = &op.name;
    let method = &op.method;
    let args: Vec<Ident> = (0..op.inputs.len())
        .map(|i| Ident::new(&format!("__durable_input{i}"), Span::mixed_site()))
        .collect();
    let types = &op.inputs;
    let decode = match args.as_slice() {
        [] => quote!(),
        [one] => {
            let ty = &types[0];
            quote!(let #one: #ty = #private::decode_input(&#call)?;)
        }
        many => quote! {
            let (#(#many,)*): (#(#types,)*) = #private::decode_input(&#call)?;
        },
    };
    let take = match op.receiver {
        Receiver::Write => quote! {
            let #this: &mut #self_ty =
                #state.get_or_insert_with(<#self_ty as ::core::default::Default>::default);
        },
        // Reading an entity with no state reads the default, without creating it.
        Receiver::Read => quote! {
            let __durable_default;
            let #this: &#self_ty = match #state {
                ::core::option::Option::Some(s) => s,
                ::core::option::Option::None => {
                    __durable_default = <#self_ty as ::core::default::Default>::default();
                    &__durable_default
                }
            };
        },
        Receiver::Consume => quote! {
            let #this: #self_ty = #state.take().unwrap_or_default();
        },
    };
    let ops = Ident::new("__durable_ops", Span::mixed_site());
    let (make_ops, pass_ops, add_ops) = match op.takes_ops {
        true => (
            quote!(let mut #ops = #private::EntityOps::new(#call.entity, #call.name);),
            quote!(&mut #ops,),
            quote!(.map(|done| done.with_ops(#ops))),
        ),
        false => (quote!(), quote!(), quote!()),
    };
    let mut invoke = quote!(<#self_ty>::#method(#this, #pass_ops #(#args),*));
    if op.is_async {
        invoke = quote!(#invoke.await);
    }
    let finish = match op.ok_type {
        Some(_) => quote_spanned!(op.span=> #private::result_output(#name, #invoke) #add_ops),
        None => quote_spanned!(op.span=> #private::value_output(#name, #invoke) #add_ops),
    };
    let _ = entity;
    quote! {
        #name => {
            #decode
            #make_ops
            #take
            #finish
        }
    }
}

/// `MyCounter` → `my_counter`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
