//! The checker: parses every grammar scalar of a [`SpecDoc`], resolves names, infers kinds and
//! shapes (with an implicit batch dimension), expands networks into layers, and verifies what the
//! chosen algorithm needs. All errors are collected; the result is a [`CheckedSpec`] that later
//! stages can trust.

// Errors are collected into a list, never propagated through hot paths: their size does not matter.
#![allow(clippy::result_large_err)]

mod calls;
mod data;
mod decls;
mod error;
mod expr;
mod learn;
mod networks;
pub mod print;
mod types;

pub use calls::{CallSig, ParamSig, ValueKind};
pub use error::CheckError;
pub use types::*;

use crate::spec::SpecDoc;

/// Checks a loaded spec. `default_name` names the model when the spec has no `name:`.
pub fn check(doc: &SpecDoc, default_name: &str) -> Result<CheckedSpec, Vec<CheckError>> {
    let mut cx = Checker::default();
    let name = doc
        .name
        .as_ref()
        .map_or(default_name.to_string(), |n| n.value.clone());
    let variables = decls::check_variables(&mut cx, &doc.variables);
    let parameters = decls::check_parameters(&mut cx, &doc.parameters, &variables);
    let mut scope = Scope::new(variables, parameters);
    let data = data::check_data(&mut cx, &doc.data, &mut scope, doc.variables.key);
    scope.networks = networks::check_networks(&mut cx, &doc.networks, &scope);
    let model = expr::check_model(&mut cx, &doc.model, &scope);
    let learn = learn::check_learn(&mut cx, &doc.learn, &doc.model, &model, &scope);
    let evaluate = learn::check_evaluations(&mut cx, &doc.evaluate, learn.as_ref(), &model, &scope);
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let Scope {
        variables,
        parameters,
        networks,
    } = scope;
    Ok(CheckedSpec {
        name,
        description: doc.description.as_ref().map(|d| d.value.clone()),
        data: data.expect("internal error: data checked without errors yields a config"),
        variables,
        parameters,
        networks,
        model,
        learn: learn.expect("internal error: learn checked without errors yields a config"),
        evaluate,
    })
}

/// Collects errors while the checker walks the spec.
#[derive(Default)]
pub(crate) struct Checker {
    pub errors: Vec<CheckError>,
    /// Names whose declaration had errors: later uses of them are not reported again as unknown.
    pub broken: std::collections::BTreeSet<String>,
}

impl Checker {
    pub fn error(&mut self, e: CheckError) {
        let follow_up = match &e {
            CheckError::UnknownName { name, .. }
            | CheckError::UnknownFunction { name, .. }
            | CheckError::UnknownOptimizerTarget { name, .. } => self.broken.contains(name),
            _ => false,
        };
        if !follow_up {
            self.errors.push(e);
        }
    }

    /// Records that the declaration of `name` failed.
    pub fn broken(&mut self, name: &str) {
        self.broken.insert(name.to_string());
    }

    /// Keeps the value, or records the error and returns `None`.
    pub fn ok<T>(&mut self, r: Result<T, CheckError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(e);
                None
            }
        }
    }
}

/// Everything declared in a spec, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub variables: Vec<Variable>,
    pub parameters: Vec<Parameter>,
    pub networks: Vec<Network>,
}

impl Scope {
    fn new(variables: Vec<Variable>, parameters: Vec<Parameter>) -> Self {
        Scope {
            variables,
            parameters,
            networks: Vec::new(),
        }
    }

    pub fn variable(&self, name: &str) -> Option<(VarId, &Variable)> {
        self.variables
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == name)
            .map(|(i, v)| (VarId(i), v))
    }

    pub fn parameter(&self, name: &str) -> Option<(ParamId, &Parameter)> {
        self.parameters
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
            .map(|(i, p)| (ParamId(i), p))
    }

    pub fn network(&self, name: &str) -> Option<(NetId, &Network)> {
        self.networks
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == name)
            .map(|(i, n)| (NetId(i), n))
    }

    /// Every name a spec author may refer to, for "did you mean".
    pub fn all_names(&self) -> Vec<&str> {
        let vars = self.variables.iter().map(|v| v.name.as_str());
        let params = self.parameters.iter().map(|p| p.name.as_str());
        let nets = self.networks.iter().map(|n| n.name.as_str());
        vars.chain(params).chain(nets).collect()
    }

    /// The observed variable bound to the data's features, if declared.
    pub fn observed_features(&self) -> Option<(VarId, &Variable)> {
        self.variables
            .iter()
            .enumerate()
            .find(|(_, v)| v.observed && v.is_continuous())
            .map(|(i, v)| (VarId(i), v))
    }
}

#[cfg(test)]
mod tests;
