//! Stacks embedded in the binary.
//!
//! [`LAUNCHPAD`] is the demo stack `stackcore` runs when no `--stack` is given. It is the project's
//! own: a made-up program `launchpad` (program id `LaunchpadDemo111111111111111111111111111111`,
//! Anchor-style Borsh layout with 8-byte discriminators) where every token gets a constant-product
//! bonding curve and is traded with `buy` and `sell`. The file is written in the HyperStack stack
//! format (`ast_version` 0.0.1), so the reference interpreter loads it too
//! (`tests/demo_stack_loads_in_reference.rs` checks that it does, feature by feature).
//!
//! One entity, `Token`, keyed by the mint (`id.mint`), exercises what a stack can say:
//!
//! | source | fields | strategies |
//! |---|---|---|
//! | account `BondingCurve` | `id.*`, `curve.*` reserves, supply, `complete` | SetOnce, LastWrite |
//! | instruction `create` | `info.name/symbol/uri`, `info.created_slot/created_at` (from the update context) | SetOnce |
//! | instructions `buy`, `sell` | `trading.volume_sol` | Sum |
//! | | `trading.trade_count`, `buy_count`, `sell_count` | Count |
//! | | `trading.largest_trade_sol` | Max |
//! | | `trading.unique_traders` | UniqueCount |
//! | | `trading.last_trader` | LastWrite |
//! | | `events.buys`, `events.sells` (event records: user, amounts) | Append |
//! | computed | `pricing.price_sol` = virtual SOL / virtual tokens (SOL per whole token, null before the curve is seen), `pricing.market_cap_sol` = price × supply | |
//!
//! Derived views: `Token/top` (sorted by `trading.volume_sol` desc, first 10) and `Token/latest`
//! (sorted by `info.created_slot` desc), besides the `Token/list`, `Token/state`, `Token/append`
//! every entity has.

/// The launchpad demo stack file (`launchpad.stack.json`), as its bytes are embedded.
pub const LAUNCHPAD: &str = include_str!("launchpad.stack.json");

/// The name the demo stack goes by in logs and `--stack` help.
pub const LAUNCHPAD_NAME: &str = "Launchpad";
