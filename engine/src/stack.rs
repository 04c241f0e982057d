//! A loaded stack: the parsed file, its compiled IDL layouts and its compiled handlers.
//!
//! `Stack::from_json` parses, validates and compiles; it is immutable afterwards and shared by
//! every VM worker that runs the stack.

use crate::event::Pubkey;
use crate::idl::IdlSet;
use crate::spec::{SpecError, StackSpec};
use crate::view::ViewDef;
use crate::vm::Program;

pub struct Stack {
    name: String,
    program_ids: Vec<Pubkey>,
    entities: Vec<(String, Vec<ViewDef>)>,
    spec: StackSpec,
    program: Program,
    idls: IdlSet,
    /// IDL event type id → the VM's event id (None: the stack does not react to it).
    idl_events: Vec<Option<usize>>,
    /// IDL event type id → the names its records are read by.
    shapes: Vec<std::sync::Arc<crate::vm::Shape>>,
}

impl Stack {
    /// Parses, validates and compiles a `*.stack.json` file.
    pub fn from_json(bytes: &[u8]) -> Result<Stack, SpecError> {
        let spec = StackSpec::from_json(bytes)?;
        let mut program_ids = Vec::with_capacity(spec.program_ids.len());
        for (i, p) in spec.program_ids.iter().enumerate() {
            let key = bs58::decode(p)
                .into_vec()
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    SpecError::new(
                        format!("$.program_ids[{i}]"),
                        "expected a base58 public key",
                    )
                })?;
            program_ids.push(key);
        }
        let mut program = crate::vm::program_of(&spec)?;
        let idls = IdlSet::from_json(&serde_json::Value::Array(spec.idls.clone()))?;
        let idl_events = idls
            .event_types()
            .iter()
            .map(|t| program.event_ids.get(&*t.name).copied())
            .collect();
        let shapes: Vec<_> = idls
            .event_types()
            .iter()
            .map(|t| std::sync::Arc::new(crate::vm::Shape::of(t)))
            .collect();
        program.locate_event_paths(&idls, &shapes);
        let entities = spec
            .entities
            .iter()
            .map(|e| (e.state_name.clone(), e.views.clone()))
            .collect();
        Ok(Stack {
            name: spec.stack_name.clone(),
            program_ids,
            entities,
            spec,
            program,
            idls,
            idl_events,
            shapes,
        })
    }

    /// `stack_name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The programs whose accounts and instructions the stack reads (the upstream filter).
    pub fn program_ids(&self) -> Vec<Pubkey> {
        self.program_ids.clone()
    }

    /// Each entity's `state_name` with its derived views, in file order.
    pub fn entity_views(&self) -> Vec<(&str, &[ViewDef])> {
        self.entities
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
    }

    /// The parsed file.
    pub fn spec(&self) -> &StackSpec {
        &self.spec
    }

    /// Event type names the stack reacts to (handlers, hooks, `when` instructions).
    pub fn event_types(&self) -> &[String] {
        &self.program.event_names
    }

    /// The IDLs inside the stack, compiled (decode / encode).
    pub fn idls(&self) -> &IdlSet {
        &self.idls
    }

    pub(crate) fn vm_event(&self, idl_event_type: u32) -> Option<usize> {
        self.idl_events
            .get(idl_event_type as usize)
            .copied()
            .flatten()
    }

    pub(crate) fn shape(&self, idl_event_type: u32) -> Option<&std::sync::Arc<crate::vm::Shape>> {
        self.shapes.get(idl_event_type as usize)
    }

    pub(crate) fn program(&self) -> &Program {
        &self.program
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ore() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/stacks/OreStream.stack.json"
        ))
        .unwrap()
    }

    #[test]
    fn ore_loads_with_program_ids_and_views() {
        let s = Stack::from_json(&ore()).unwrap();
        assert_eq!(s.name(), "OreStream");
        assert_eq!(s.program_ids().len(), 2);
        let names: Vec<_> = s.entity_views().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["OreRound", "OreTreasury", "OreMiner"]);
        assert!(s.event_types().iter().any(|t| t == "ore::DeployIxState"));
        assert!(s
            .event_types()
            .iter()
            .any(|t| t == "entropy::RevealIxState"));
    }

    #[test]
    fn bad_program_id_names_its_path() {
        let mut v: serde_json::Value = serde_json::from_slice(&ore()).unwrap();
        v["program_ids"][1] = serde_json::json!("not-base58-0OIl");
        let err = Stack::from_json(&serde_json::to_vec(&v).unwrap())
            .err()
            .unwrap();
        assert_eq!(err.path, "$.program_ids[1]");
    }

    #[test]
    fn bad_computed_expression_is_a_spec_error() {
        let mut v: serde_json::Value = serde_json::from_slice(&ore()).unwrap();
        v["entities"][0]["computed_field_specs"][1]["expression"]["ResolverComputed"]["method"] =
            serde_json::json!("no_such_method");
        let err = Stack::from_json(&serde_json::to_vec(&v).unwrap())
            .err()
            .unwrap();
        assert_eq!(err.path, "$.entities[0].computed_field_specs[1].expression");
    }
}
