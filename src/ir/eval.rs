//! A small reference evaluator of the IR in f64 (plain loops, no candle), for numeric tests of
//! derived functions. (Stub: the gradients helper replaces this.)

use super::Program;
use std::collections::HashMap;

/// A dense f64 tensor; `shape` includes the batch dimension when the value is batched.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Parameter values by spec path.
pub type ParamValues = HashMap<String, Tensor>;

/// Evaluates function `name` on the given inputs (by argument name); returns its named outputs.
pub fn eval_function(p: &Program, name: &str, inputs: &[(&str, Tensor)], params: &ParamValues) -> Vec<(String, Tensor)> {
    let _ = (p, name, inputs, params);
    unimplemented!("stub")
}

/// Deterministic initial values for every parameter of the program (seeded), in f64.
pub fn init_params(p: &Program, seed: u64) -> ParamValues {
    let _ = (p, seed);
    unimplemented!("stub")
}
