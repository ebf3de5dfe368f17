//! Who is asking: principals and their roles.

mod principal;

pub use principal::Principal;
