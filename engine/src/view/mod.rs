//! Views: mutations in, frames out.
//!
//! For every entity `E`: `E/state`, `E/list`, `E/append`, plus the derived views of the stack file.
//! [`Views`] owns the entity caches (snapshots are served from them) and the sorted windows; it
//! turns each [`Mutation`](crate::Mutation) into [`Output`]s, each frame serialized once.
//!
//! Subscriptions are identified by a [`SubId`] chosen by the caller (the reactor that owns the
//! connection). Frames meant for every subscriber of a view go out as [`Output::Broadcast`];
//! frames meant for one subscription (its `subscribed` frame, its snapshot, its sorted window
//! deltas) go out as [`Output::To`].

pub mod spec;
pub mod subscribe;

pub use spec::ViewDef;
pub use subscribe::Subscription;

use std::sync::Arc;

use crate::frame::SharedFrame;

/// Index of a view in its [`Views`]; stable for the life of a loaded stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewId(pub u32);

/// A subscription, named by the caller. The reactor encodes its own index in it so that a worker
/// can route [`Output::To`] frames back; the engine treats it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

/// A frame to deliver.
#[derive(Debug, Clone)]
pub enum Output {
    /// To every active subscription of `view` whose key filter admits `key`
    /// (list/append: no filter or an equal key; state: an equal key).
    Broadcast {
        view: ViewId,
        key: Arc<str>,
        frame: SharedFrame,
    },
    /// To one subscription only.
    To { sub: SubId, frame: SharedFrame },
}

/// Why a subscribe was refused. Sent to the client as a non-fatal error; the connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("unknown view `{0}`")]
    UnknownView(String),
    #[error("snapshot of {rows} rows exceeds the limit of {limit}")]
    SnapshotLimitExceeded { rows: usize, limit: usize },
}

impl SubscribeError {
    /// The kebab-case code clients see in `error` / `code`.
    pub fn code(&self) -> &'static str {
        match self {
            SubscribeError::UnknownView(_) => "unknown-view",
            SubscribeError::SnapshotLimitExceeded { .. } => "snapshot-limit-exceeded",
        }
    }
}

use crate::config::EntityCacheConfig;
use crate::mutation::Mutation;

/// All views of one loaded stack, with their caches and subscriptions.
///
/// CONTRACT (filled in by the views work): the signatures below are what the VM worker calls.
pub struct Views {
    _cfg: EntityCacheConfig,
}

impl Views {
    /// Registers `E/state`, `E/list`, `E/append` for every entity, then each derived view.
    pub fn new<'a>(
        entities: impl IntoIterator<Item = (&'a str, &'a [ViewDef])>,
        cfg: EntityCacheConfig,
    ) -> Views {
        let _ = entities.into_iter().count();
        Views { _cfg: cfg }
    }

    /// The id of a view by name, `None` if the stack has no such view.
    pub fn view_id(&self, _name: &str) -> Option<ViewId> {
        todo!("views")
    }

    /// Every view name, in id order.
    pub fn names(&self) -> Vec<&str> {
        todo!("views")
    }

    /// Projects one mutation into every view of its entity.
    pub fn apply(&mut self, _m: &Mutation, _out: &mut Vec<Output>) {
        todo!("views")
    }

    /// Starts a subscription: pushes its `subscribed` frame and snapshot as [`Output::To`].
    /// Subsequent live frames reach it through [`Output::Broadcast`] (or `To` for sorted windows).
    pub fn subscribe(
        &mut self,
        _sub: SubId,
        _req: &Subscription,
        _out: &mut Vec<Output>,
    ) -> Result<ViewId, SubscribeError> {
        todo!("views")
    }

    /// Ends a subscription; unknown ids are ignored.
    pub fn unsubscribe(&mut self, _sub: SubId) {}
}
