//! x87, MMX, SSE and SSE2 semantics for pandare's x86 CPU: state and operations only, no
//! decoding. (Interface documentation: see below; filled in as the crate grows.)

pub mod image;
pub mod simd;
pub mod soft;
pub mod sse;
pub mod trans;
pub mod x87;
