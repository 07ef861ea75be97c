//! Impl-style entities: `#[entity] impl Type { pub fn op(&mut self, ..) .. }`.

use super::Options;
use proc_macro2::TokenStream;
use syn::ItemImpl;

pub(super) fn expand(_options: &Options, block: ItemImpl) -> syn::Result<TokenStream> {
    Err(syn::Error::new_spanned(
        block.self_ty,
        "impl-style entities are not supported yet",
    ))
}
