//! `#[derive(rmpi::Pod)]`: lets a plain-data struct travel as its bytes (`world.send(&[p], ..)`),
//! with `rmpi` as the program's only dependency.
//!
//! Use it through the `rmpi` crate; the generated code names `::rmpi`. The struct must be
//! `#[repr(C)]` or `#[repr(transparent)]`, not generic, `Clone + Copy`, with every field
//! itself `Pod` and no padding between or after the fields: each rule is checked at compile
//! time, and breaking one is a compile error naming it. Then the struct implements
//! `bytemuck::Pod` and `bytemuck::Zeroable` (an all-zero value is valid, any byte pattern is).

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

/// Derives `rmpi::Pod` (and the `Zeroable` it needs) for a `#[repr(C)]` struct of `Pod` fields
/// without padding. See the `rmpi` crate's documentation for an example.
#[proc_macro_derive(Pod)]
pub fn derive_pod(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "#[derive(rmpi::Pod)] does not support generic structs",
        ));
    }
    let fields: Vec<&syn::Type> = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => f.named.iter().map(|f| &f.ty).collect(),
            Fields::Unnamed(f) => f.unnamed.iter().map(|f| &f.ty).collect(),
            Fields::Unit => Vec::new(),
        },
        _ => {
            return Err(syn::Error::new(
                name.span(),
                "#[derive(rmpi::Pod)] is for structs (an enum or union may hold invalid bytes)",
            ))
        }
    };
    if !has_fixed_layout(input)? {
        return Err(syn::Error::new(
            name.span(),
            "#[derive(rmpi::Pod)] needs #[repr(C)] or #[repr(transparent)]: Rust's own layout \
             may change between compilations",
        ));
    }
    let field_checks = fields.iter().map(|ty| {
        quote_spanned! {ty.span()=> __rmpi_field_is_pod::<#ty>(); }
    });
    let sizes = fields.iter().map(|ty| quote! { + ::core::mem::size_of::<#ty>() });
    let padding_msg = format!(
        "#[derive(rmpi::Pod)]: {name} has padding (its size is more than its fields'); \
         reorder the fields or add explicit padding fields"
    );
    Ok(quote! {
        const _: () = {
            fn __rmpi_field_is_pod<T: ::rmpi::Pod>() {}
            #[allow(dead_code)]
            fn __rmpi_fields_are_pod() {
                #(#field_checks)*
            }
            assert!(::core::mem::size_of::<#name>() == 0 #(#sizes)*, #padding_msg);
        };
        // SAFETY: checked above at compile time: a fixed layout (repr C or transparent), no
        // padding, and every field Pod, so every byte pattern is a valid value and zero is one.
        unsafe impl ::rmpi::__private::bytemuck::Zeroable for #name {}
        // SAFETY: as above; Copy and 'static are required by the trait itself.
        unsafe impl ::rmpi::__private::bytemuck::Pod for #name {}
    })
}

/// Whether the item has `#[repr(C)]` or `#[repr(transparent)]` (alignment modifiers allowed: the
/// padding check catches what they add).
fn has_fixed_layout(input: &DeriveInput) -> syn::Result<bool> {
    let mut fixed = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                fixed = true;
            } else if meta.input.peek(syn::token::Paren) {
                // align(N), packed(N): skip the argument.
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        })?;
    }
    Ok(fixed)
}
