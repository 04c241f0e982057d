//! Per-update frame building for derived views: each `upsert`/`delete` frame is built at most once
//! per update and shared by every window group and subscription that needs it.

use std::sync::Arc;

use serde_json::Value;

use super::{Output, ViewId};
use crate::frame::{envelope::write_json, FrameWriter, Mode, SharedFrame};

pub(crate) struct Emitter<'a> {
    pub writer: &'a mut FrameWriter,
    pub scratch: &'a mut Vec<u8>,
    pub id: ViewId,
    pub view: &'a str,
    pub mode: Mode,
    pub out: &'a mut Vec<Output>,
    upserts: Vec<(Arc<str>, SharedFrame)>,
    deletes: Vec<(Arc<str>, SharedFrame)>,
}

impl<'a> Emitter<'a> {
    pub fn new(
        writer: &'a mut FrameWriter,
        scratch: &'a mut Vec<u8>,
        id: ViewId,
        view: &'a str,
        mode: Mode,
        out: &'a mut Vec<Output>,
    ) -> Self {
        Emitter {
            writer,
            scratch,
            id,
            view,
            mode,
            out,
            upserts: Vec::new(),
            deletes: Vec::new(),
        }
    }

    pub fn upsert(&mut self, key: &Arc<str>, entity: &Value) -> SharedFrame {
        if let Some((_, f)) = self.upserts.iter().find(|(k, _)| k == key) {
            return f.clone();
        }
        self.scratch.clear();
        write_json(self.scratch, entity);
        let f = self.writer.upsert(self.mode, self.view, key, self.scratch);
        self.upserts.push((key.clone(), f.clone()));
        f
    }

    pub fn delete(&mut self, key: &Arc<str>) -> SharedFrame {
        if let Some((_, f)) = self.deletes.iter().find(|(k, _)| k == key) {
            return f.clone();
        }
        let f = self.writer.delete(self.mode, self.view, key);
        self.deletes.push((key.clone(), f.clone()));
        f
    }

    pub fn broadcast(&mut self, key: &Arc<str>, frame: SharedFrame) {
        self.out.push(Output::Broadcast {
            view: self.id,
            key: key.clone(),
            frame,
        });
    }
}
