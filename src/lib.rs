//! placeholder

pub mod replay;
pub mod stacks;
