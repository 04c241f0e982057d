//! placeholder

pub mod stacks;
