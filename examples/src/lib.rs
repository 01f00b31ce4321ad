//! Examples live next to this crate's manifest; this crate has no library code.
