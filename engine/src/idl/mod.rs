//! IDL layouts: decode account and instruction bytes, and encode them back.
