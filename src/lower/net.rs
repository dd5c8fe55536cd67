//! Networks: their learned tensors (declared once, by spec path) and their layers lowered inline
//! where a network is called. Calls on the same argument share every node (the builder hash-conses),
//! so `t(x)` written twice is computed once.

use super::ops;
use crate::check::{Activation, CheckedSpec, Init, Layer, Network, Parameter};
use crate::ir::{Builder, NodeId, ParamInfo, ParamInit, Unary};

/// Every learned tensor in spec order: the `parameters:` section, then each network's layers.
pub(super) fn declare_params(spec: &CheckedSpec) -> Vec<ParamInfo> {
    let mut out: Vec<ParamInfo> = spec
        .parameters
        .iter()
        .map(|p| ParamInfo {
            path: param_path(p),
            dims: p.shape.clone(),
            init: init(&p.init),
        })
        .collect();
    for net in &spec.networks {
        // One fan-in per learned tensor, in the order `parameter_names` lists them.
        let fan_ins = net
            .layers
            .iter()
            .flat_map(|l| l.parameter_shapes().into_iter().map(move |_| fan_in(l)));
        for ((path, dims), fan_in) in net.parameter_names().into_iter().zip(fan_ins) {
            out.push(ParamInfo {
                path,
                dims,
                init: ParamInit::FanIn(fan_in),
            });
        }
    }
    out
}

/// The spec path of a `parameters:` entry.
pub(super) fn param_path(p: &Parameter) -> String {
    format!("parameters.{}", p.name)
}

fn init(i: &Init) -> ParamInit {
    match *i {
        Init::Constant(c) => ParamInit::Constant(c),
        Init::Normal { mean, std } => ParamInit::Normal { mean, std },
        Init::Uniform { lo, hi } => ParamInit::Uniform { lo, hi },
    }
}

/// PyTorch's fan-in: `weight.size(1) · k · k` (for a transposed convolution that is the number of
/// output channels, since its weight is `[in, out, k, k]`).
fn fan_in(layer: &Layer) -> usize {
    match *layer {
        Layer::Linear { inputs, .. } => inputs,
        Layer::Conv2d {
            in_channels,
            kernel,
            ..
        } => in_channels * kernel * kernel,
        Layer::ConvTranspose2d {
            out_channels,
            kernel,
            ..
        } => out_channels * kernel * kernel,
        Layer::Activation(_) | Layer::Flatten | Layer::Unflatten { .. } | Layer::Reshape { .. } => {
            0
        }
    }
}

/// `net(x)`: the network's layers applied to node `x` (of the network's input shape).
pub(super) fn apply(b: &mut Builder, net: &Network, x: NodeId) -> NodeId {
    let mut names = net.parameter_names().into_iter();
    let mut h = x;
    for layer in &net.layers {
        // The layer's learned tensors, as Param nodes, in `parameter_shapes` order (weight, bias).
        let mut tensors: Vec<NodeId> = Vec::new();
        for _ in layer.parameter_shapes() {
            let (path, dims) = names
                .next()
                .expect("internal error: a layer tensor has no name");
            tensors.push(b.param(&path, dims));
        }
        h = match *layer {
            Layer::Linear { .. } => ops::linear(b, h, tensors[0], tensors[1]),
            Layer::Conv2d {
                stride, padding, ..
            } => ops::conv2d(b, h, tensors[0], tensors[1], stride, padding),
            Layer::ConvTranspose2d {
                stride, padding, ..
            } => ops::conv_transpose2d(b, h, tensors[0], tensors[1], stride, padding),
            Layer::Activation(a) => match activation(a) {
                Some(u) => b.unary(u, h),
                None => h,
            },
            Layer::Flatten => {
                let n = b.shape(h).numel();
                b.reshape(h, vec![n])
            }
            Layer::Unflatten { channels } => b.reshape(h, vec![channels, 1, 1]),
            Layer::Reshape { ref dims } => b.reshape(h, dims.clone()),
        };
    }
    h
}

/// The elementwise op of an activation; `None` for the identity.
fn activation(a: Activation) -> Option<Unary> {
    Some(match a {
        Activation::Relu => Unary::Relu,
        Activation::LeakyRelu(s) => Unary::LeakyRelu(s),
        Activation::Gelu => Unary::Gelu,
        Activation::Swish => Unary::Swish,
        Activation::Tanh => Unary::Tanh,
        Activation::Sigmoid => Unary::Sigmoid,
        Activation::Softplus => Unary::Softplus,
        Activation::Identity => return None,
    })
}
