//! `#[entity]`: a function-style entity (`async fn name(ctx: &mut EntityContext<S>)`) or an
//! impl-style one (`impl Type { pub fn op(&mut self, ..) .. }`), each registered under a name
//! through `inventory`.

mod function;
mod impl_block;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Item, LitStr};

/// The attribute's options.
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
}

/// Parses `#[entity(name = "...")]`.
fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            let value = name.value();
            if value.trim().is_empty() {
                return Err(syn::Error::new(name.span(), "the name must not be empty"));
            }
            if value.contains('@') {
                return Err(syn::Error::new(
                    name.span(),
                    "an entity name cannot contain '@' (entity ids are `@name@key`)",
                ));
            }
            options.name = Some(name);
            Ok(())
        } else {
            Err(meta.error("unknown option for #[entity]; valid options: `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok(options)
}

/// Entry point: dispatches on the item the attribute is on.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_options(args);
    let parsed: syn::Result<Item> = syn::parse2(item.clone());
    let result = match (options, parsed) {
        (Err(err), _) => Err(err),
        (Ok(options), Ok(Item::Fn(function))) => function::expand(&options, function),
        (Ok(options), Ok(Item::Impl(block))) => impl_block::expand(&options, block),
        (Ok(_), Ok(other)) => Err(syn::Error::new_spanned(
            other,
            "#[entity] applies to an `async fn name(ctx: &mut EntityContext<State>)` or to an \
             `impl Type { .. }` block whose `pub fn`s are the operations",
        )),
        (Ok(_), Err(err)) => Err(syn::Error::new(
            err.span(),
            format!("#[entity] applies to a function or an `impl` block: {err}"),
        )),
    };
    match result {
        Ok(tokens) => tokens,
        Err(err) => {
            let error = err.to_compile_error();
            quote! { #error #item }
        }
    }
}

/// The registered name: the option, or the item's own name.
fn registered_name(options: &Options, default: String) -> String {
    options.name.as_ref().map_or(default, LitStr::value)
}

/// The path of the generated code's helpers.
fn private() -> TokenStream {
    quote!(::durable_runtime::__private)
}

/// The registration of an entity whose live instances `new` makes.
fn register(name: &str, new: &syn::Ident) -> TokenStream {
    let private = private();
    let _ = Span::call_site();
    quote! {
        #private::inventory::submit! {
            #private::EntityRegistration {
                name: #name,
                new: #new,
                location: ::core::concat!(::core::file!(), ":", ::core::line!()),
            }
        }
    }
}
