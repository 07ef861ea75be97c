//! Parsing `#[activity(...)]` / `#[orchestrator(...)]` arguments.

use crate::signature::Kind;
use proc_macro2::TokenStream;
use syn::LitStr;

/// The options given in the attribute.
#[derive(Default)]
pub(crate) struct Options {
    pub name: Option<LitStr>,
    pub version: Option<LitStr>,
}

/// Parses the attribute's arguments, listing the valid keys on error.
pub(crate) fn parse(kind: Kind, args: TokenStream) -> syn::Result<Options> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let name: LitStr = meta.value()?.parse()?;
            if name.value().trim().is_empty() {
                return Err(syn::Error::new(name.span(), "the name must not be empty"));
            }
            options.name = Some(name);
            Ok(())
        } else if meta.path.is_ident("version") && kind == Kind::Orchestrator {
            options.version = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            let valid = match kind {
                Kind::Activity => "`name = \"...\"`",
                Kind::Orchestrator => "`name = \"...\"` and `version = \"...\"`",
            };
            Err(meta.error(format!(
                "unknown option for #[{kind}]; valid options: {valid}"
            )))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;
    Ok(options)
}
