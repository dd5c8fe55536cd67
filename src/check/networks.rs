//! `networks:` — each definition is expanded into explicit layers with inferred shapes.

use super::calls::{const_number, const_usize, show};
use super::decls::RESERVED;
use super::error::related;
use super::{
    Activation, CheckError, Checker, Head, HeadFamily, Layer, Network, Scope, VarId, VarType,
};
use crate::diag::{did_you_mean, one_of};
use crate::source::Span;
use crate::spec::{Entry, NameMap, Text};
use crate::syntax::{self, ast};

const CONSTRUCTORS: &[&str] = &["mlp", "linear", "conv", "deconv", "encoder", "flatten"];
const ACTIVATIONS: &[&str] = &[
    "relu", "lrelu", "gelu", "swish", "silu", "tanh", "sigmoid", "softplus", "identity",
];

pub(crate) fn check_networks(
    cx: &mut Checker,
    nets: &NameMap<Text>,
    scope: &Scope,
) -> Vec<Network> {
    let mut out: Vec<Network> = Vec::new();
    for entry in &nets.entries {
        let name = &entry.key.value;
        if RESERVED.contains(&name.as_str()) || ACTIVATIONS.contains(&name.as_str()) {
            cx.error(CheckError::ReservedName {
                name: name.clone(),
                span: entry.key.span,
            });
            continue;
        }
        let first = scope
            .variables
            .iter()
            .map(|v| (&v.name, v.name_span))
            .chain(scope.parameters.iter().map(|p| (&p.name, p.name_span)))
            .find(|(n, _)| *n == name);
        if let Some((_, first)) = first {
            cx.error(CheckError::DuplicateName {
                name: name.clone(),
                first,
                second: entry.key.span,
            });
            continue;
        }
        let def = match syntax::parse_network(&entry.value.value, &entry.value.map) {
            Ok(d) => d,
            Err(e) => {
                cx.error(e.into());
                cx.broken(name);
                continue;
            }
        };
        match NetBuilder::new(cx, entry, scope).build(&def) {
            Some(net) => out.push(net),
            None => cx.broken(name),
        }
    }
    out
}

/// Walks the stages of one definition, tracking the current shape.
struct NetBuilder<'a, 'c> {
    cx: &'c mut Checker,
    entry: &'a Entry<Text>,
    scope: &'a Scope,
    layers: Vec<Layer>,
    shape: Vec<usize>,
    input: Option<(VarId, Vec<usize>)>,
    /// The input variable's name in the definition.
    input_span: Span,
    head: Option<Head>,
}

impl<'a, 'c> NetBuilder<'a, 'c> {
    fn new(cx: &'c mut Checker, entry: &'a Entry<Text>, scope: &'a Scope) -> Self {
        NetBuilder {
            cx,
            entry,
            scope,
            layers: Vec::new(),
            shape: Vec::new(),
            input: None,
            input_span: Span::point(0),
            head: None,
        }
    }

    /// `reason` goes in the message, `label` (a few words on what is wrong) at `span`.
    fn invalid(
        &self,
        reason: impl Into<String>,
        span: Span,
        label: impl Into<String>,
        help: Option<String>,
    ) -> CheckError {
        CheckError::InvalidNetwork {
            name: self.entry.key.value.clone(),
            reason: reason.into(),
            span,
            label: label.into(),
            related: Vec::new(),
            help,
        }
    }

    /// When the current shape is still the input variable's (no layer yet), its declaration is
    /// the other side of a shape complaint.
    fn input_declaration(&self) -> Vec<miette::LabeledSpan> {
        match &self.input {
            Some((id, _)) if self.layers.is_empty() => {
                let v = &self.scope.variables[id.0];
                vec![related(
                    v.span,
                    format!(
                        "`{}` has shape {}, declared here",
                        v.name,
                        shape_text(&v.shape)
                    ),
                )]
            }
            _ => Vec::new(),
        }
    }

    fn build(mut self, def: &ast::NetworkDef) -> Option<Network> {
        for (i, stage) in def.stages.iter().enumerate() {
            if self.head.is_some() {
                let e = self.invalid(
                    "nothing can follow a distribution head",
                    stage.span,
                    "a stage after the head",
                    Some("make the encoder the last stage".into()),
                );
                self.cx.error(e);
                return None;
            }
            let chain = if i == 0 {
                self.take_input(stage)?
            } else {
                self.no_input(stage)?
            };
            self.stage(stage, chain)?;
        }
        let (input, input_shape) = self.input?;
        let output_shape = match &self.head {
            Some(h) => self.scope.variables[h.latent.0].shape.clone(),
            None => self.shape.clone(),
        };
        Some(Network {
            name: self.entry.key.value.clone(),
            input,
            input_shape,
            layers: self.layers,
            output_shape,
            head: self.head,
            span: def.span,
            name_span: self.entry.key.span,
            input_span: self.input_span,
        })
    }

    /// The first stage names the input variable as the first link of its chain.
    fn take_input<'s>(&mut self, stage: &'s ast::Stage) -> Option<&'s [ast::ChainItem]> {
        let Some(first) = stage.chain.first() else {
            let e = self.invalid(
                "the first stage must name its input variable",
                stage.span,
                "no input variable",
                Some(format!("e.g. `{}(z -> 200 -> 1)`", stage.name.name)),
            );
            self.cx.error(e);
            return None;
        };
        let ast::ExprKind::Name(n) = &first.value.kind else {
            let e = self.invalid(
                "the first link of the chain must be the input variable",
                first.span,
                "not a variable name",
                Some(format!("e.g. `{}(z -> 200 -> 1)`", stage.name.name)),
            );
            self.cx.error(e);
            return None;
        };
        let Some((id, var)) = self.scope.variable(&n.name) else {
            let names: Vec<&str> = self
                .scope
                .variables
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            self.cx.error(CheckError::UnknownName {
                name: n.name.clone(),
                span: n.span,
                help: did_you_mean(&n.name, names.iter().copied()).or_else(|| {
                    Some(format!(
                        "a network's input is a declared variable: {}",
                        one_of(&names)
                    ))
                }),
            });
            return None;
        };
        if var.ty == VarType::Onehot {
            self.cx.error(CheckError::DiscreteAsContinuous {
                name: var.name.clone(),
                span: n.span,
                declared: var.span,
            });
            return None;
        }
        self.input = Some((id, var.shape.clone()));
        self.input_span = n.span;
        self.shape = var.shape.clone();
        Some(&stage.chain[1..])
    }

    fn no_input<'s>(&mut self, stage: &'s ast::Stage) -> Option<&'s [ast::ChainItem]> {
        if let Some(first) = stage.chain.first()
            && let ast::ExprKind::Name(n) = &first.value.kind
            && self.scope.variable(&n.name).is_some()
        {
            let e = self.invalid(
                format!("only the first stage names an input; this stage receives the output of the previous one ({})", shape_text(&self.shape)),
                first.span,
                "a second input",
                Some(format!("remove `{} ->`", n.name)),
            );
            self.cx.error(e);
            return None;
        }
        Some(&stage.chain)
    }

    fn stage(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem]) -> Option<()> {
        let kind = stage.name.name.as_str();
        if let Some(pos) = stage.args.iter().find(|a| a.name.is_none()) {
            self.cx.error(CheckError::PositionalArgument {
                callee: kind.into(),
                span: pos.span,
                help: Some("options are named, e.g. `act = relu`; layer widths go in the chain `a -> b -> c`".into()),
            });
            return None;
        }
        match kind {
            "mlp" | "linear" => self.dense(stage, chain, kind == "mlp"),
            "encoder" => self.encoder(stage, chain),
            "conv" => self.conv(stage, chain),
            "deconv" => self.deconv(stage, chain),
            "flatten" => {
                self.no_chain(stage, chain)?;
                self.flatten();
                Some(())
            }
            _ if ACTIVATIONS.contains(&kind) => {
                self.no_chain(stage, chain)?;
                let e = ast::Expr {
                    kind: ast::ExprKind::Call(stage_as_call(stage)),
                    span: stage.span,
                };
                let act = self.cx.ok(activation(&e))?;
                self.layers.push(Layer::Activation(act));
                Some(())
            }
            _ => {
                let all: Vec<&str> = CONSTRUCTORS.iter().chain(ACTIVATIONS).copied().collect();
                self.cx.error(CheckError::UnknownLayer {
                    layer: kind.into(),
                    span: stage.name.span,
                    help: did_you_mean(kind, all.iter().copied())
                        .or_else(|| Some(format!("layers: {}", one_of(CONSTRUCTORS)))),
                });
                None
            }
        }
    }

    fn no_chain(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem]) -> Option<()> {
        if let Some(item) = chain.first() {
            let e = self.invalid(
                format!("`{}` takes no layer sizes", stage.name.name),
                item.span,
                "a layer size",
                None,
            );
            self.cx.error(e);
            return None;
        }
        Some(())
    }

    fn options(&mut self, stage: &ast::Stage, allowed: &[&str]) -> Option<()> {
        let mut ok = true;
        for arg in &stage.args {
            let Some(n) = &arg.name else { continue };
            if !allowed.contains(&n.name.as_str()) {
                self.cx.error(CheckError::UnknownArgument {
                    callee: stage.name.name.clone(),
                    name: n.name.clone(),
                    span: n.span,
                    help: did_you_mean(&n.name, allowed.iter().copied()).or_else(|| {
                        Some(if allowed.is_empty() {
                            "it takes no options".into()
                        } else {
                            format!("options: {}", one_of(allowed))
                        })
                    }),
                });
                ok = false;
            }
        }
        ok.then_some(())
    }

    fn act_option(
        &mut self,
        stage: &ast::Stage,
        key: &str,
        default: Activation,
    ) -> Option<Activation> {
        match stage.named(key) {
            None => Some(default),
            Some(arg) => self.cx.ok(activation(&arg.value)),
        }
    }

    fn width(&mut self, item: &ast::ChainItem, what: &str) -> Option<usize> {
        if let Some(at) = &item.at {
            let e = self.invalid(
                format!("{what} has no spatial size"),
                at.span,
                format!("`@...` on {what}"),
                Some("remove `@...`; sizes belong to `conv`/`deconv`".into()),
            );
            self.cx.error(e);
            return None;
        }
        self.cx.ok(const_usize(&item.value, "a layer width", 1))
    }

    fn flatten(&mut self) {
        if self.shape.len() != 1 {
            self.layers.push(Layer::Flatten);
            self.shape = vec![self.shape.iter().product()];
        }
    }

    /// `mlp` (activations between layers, `out` after the last) and `linear` (no activations).
    fn dense(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem], mlp: bool) -> Option<()> {
        self.options(stage, if mlp { &["act", "out"] } else { &[] })?;
        let act = self.act_option(stage, "act", Activation::LeakyRelu(0.2))?;
        let out = self.act_option(stage, "out", Activation::Identity)?;
        if chain.is_empty() {
            let e = self.invalid(
                format!("`{}` needs at least one width", stage.name.name),
                stage.span,
                "no layer width",
                Some("e.g. `mlp(z -> 200 -> 1)`".into()),
            );
            self.cx.error(e);
            return None;
        }
        self.flatten();
        for (i, item) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let dims = match &item.value.kind {
                ast::ExprKind::List(items) if last && item.at.is_none() => {
                    let dims: Option<Vec<usize>> = items
                        .iter()
                        .map(|d| self.cx.ok(const_usize(d, "an output dimension", 1)))
                        .collect();
                    let dims = dims?;
                    if dims.is_empty() {
                        let e = self.invalid(
                            "an output shape needs at least one dimension",
                            item.span,
                            "an empty shape",
                            Some("e.g. `linear([2, 128])`".into()),
                        );
                        self.cx.error(e);
                        return None;
                    }
                    dims
                }
                _ => vec![self.width(item, "a dense layer")?],
            };
            let w: usize = dims.iter().product();
            self.layers.push(Layer::Linear {
                inputs: self.shape[0],
                outputs: w,
            });
            self.shape = vec![w];
            if mlp && !last {
                self.layers.push(Layer::Activation(act));
            }
            if dims.len() > 1 {
                if out != Activation::Identity {
                    self.layers.push(Layer::Activation(out));
                }
                self.layers.push(Layer::Reshape { dims: dims.clone() });
                self.shape = dims;
                return Some(());
            }
        }
        if out != Activation::Identity {
            self.layers.push(Layer::Activation(out));
        }
        Some(())
    }

    /// `encoder(x -> 512 -> normal(z))`: hidden layers, then a head with mean and log-std of z.
    fn encoder(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem]) -> Option<()> {
        self.options(stage, &["act"])?;
        let act = self.act_option(stage, "act", Activation::LeakyRelu(0.2))?;
        let Some((last, hidden)) = chain.split_last() else {
            let e = self.invalid(
                "an encoder ends with a distribution head",
                stage.span,
                "no distribution head",
                Some("e.g. `encoder(x -> 512 -> normal(z))`".into()),
            );
            self.cx.error(e);
            return None;
        };
        let head_latent = self.head_latent(last)?;
        self.flatten();
        for item in hidden {
            let w = self.width(item, "a dense layer")?;
            self.layers.push(Layer::Linear {
                inputs: self.shape[0],
                outputs: w,
            });
            self.layers.push(Layer::Activation(act));
            self.shape = vec![w];
        }
        let latent = &self.scope.variables[head_latent.0];
        let d: usize = latent.shape.iter().product();
        self.layers.push(Layer::Linear {
            inputs: self.shape[0],
            outputs: 2 * d,
        });
        self.shape = vec![2 * d];
        self.head = Some(Head {
            latent: head_latent,
            family: HeadFamily::Normal,
        });
        Some(())
    }

    fn head_latent(&mut self, item: &ast::ChainItem) -> Option<VarId> {
        let help = Some(
            "an encoder's last link is `normal(LATENT)`, e.g. `encoder(x -> 512 -> normal(z))`"
                .to_string(),
        );
        let ast::ExprKind::Call(c) = &item.value.kind else {
            let e = self.invalid(
                "an encoder ends with a distribution head",
                item.span,
                "not a distribution head",
                help,
            );
            self.cx.error(e);
            return None;
        };
        if c.callee.name != "normal" {
            self.cx.error(CheckError::UnknownCall {
                what: "encoder head".into(),
                name: c.callee.name.clone(),
                span: c.callee.span,
                help: Some("the supported head is `normal(LATENT)` (mean and log-std)".into()),
            });
            return None;
        }
        let arg = match c.args.as_slice() {
            [a] if a.name.is_none() => &a.value,
            _ => {
                let e = self.invalid(
                    "the head names the one latent it infers",
                    c.span,
                    "not one latent",
                    help,
                );
                self.cx.error(e);
                return None;
            }
        };
        let ast::ExprKind::Name(n) = &arg.kind else {
            let e = self.invalid(
                "the head names the one latent it infers",
                arg.span,
                "not a variable name",
                help,
            );
            self.cx.error(e);
            return None;
        };
        match self.scope.variable(&n.name) {
            Some((id, v)) if !v.observed && v.ty != VarType::Onehot => Some(id),
            Some((_, v)) => {
                let e = self.invalid(
                    format!(
                        "`{}` is {}; an encoder infers a latent continuous variable",
                        v.name,
                        v.kind_name()
                    ),
                    n.span,
                    format!(
                        "{} variable",
                        if v.observed {
                            "an observed"
                        } else {
                            "a discrete"
                        }
                    ),
                    None,
                );
                self.cx.error(e);
                None
            }
            None => {
                let names: Vec<&str> = self
                    .scope
                    .variables
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect();
                self.cx.error(CheckError::UnknownName {
                    name: n.name.clone(),
                    span: n.span,
                    help: did_you_mean(&n.name, names.iter().copied()),
                });
                None
            }
        }
    }

    fn conv(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem]) -> Option<()> {
        self.options(stage, &["kernel", "stride", "padding", "act"])?;
        let act = self.act_option(stage, "act", Activation::LeakyRelu(0.2))?;
        if self.shape.len() != 3 {
            let mut e = self.invalid(
                format!(
                    "`conv` needs an image input [C, H, W], found {}",
                    shape_text(&self.shape)
                ),
                stage.name.span,
                format!("input of shape {}", shape_text(&self.shape)),
                Some("declare the input as `image[C, H, W]`".into()),
            );
            if let CheckError::InvalidNetwork { related, .. } = &mut e {
                *related = self.input_declaration();
            }
            self.cx.error(e);
            return None;
        }
        if chain.is_empty() {
            let e = self.invalid(
                "`conv` needs at least one layer",
                stage.span,
                "no layer",
                Some("e.g. `conv(x -> 32 -> 64@14)`".into()),
            );
            self.cx.error(e);
            return None;
        }
        let per_layer = |b: &mut Self, key: &str| -> Option<Vec<Option<usize>>> {
            let Some(arg) = stage.named(key) else {
                return Some(vec![None; chain.len()]);
            };
            let values = match &arg.value.kind {
                ast::ExprKind::List(items) | ast::ExprKind::Tuple(items) => {
                    items.iter().collect::<Vec<_>>()
                }
                _ => vec![&arg.value; chain.len()],
            };
            if values.len() != chain.len() {
                let e = b.invalid(
                    format!(
                        "`{key}` lists {} values for {} layers",
                        values.len(),
                        chain.len()
                    ),
                    arg.value.span,
                    format!("{} values", values.len()),
                    Some("give one value, or one per layer".into()),
                );
                b.cx.error(e);
                return None;
            }
            let min = if key == "padding" { 0 } else { 1 };
            values
                .iter()
                .map(|v| b.cx.ok(const_usize(v, key, min)).map(Some))
                .collect()
        };
        let kernels = per_layer(self, "kernel")?;
        let strides = per_layer(self, "stride")?;
        let paddings = per_layer(self, "padding")?;
        for (i, item) in chain.iter().enumerate() {
            let channels = self.cx.ok(const_usize(&item.value, "a channel count", 1))?;
            let size = (self.shape[1], self.shape[2]);
            let target = match &item.at {
                Some(at) => Some(self.cx.ok(const_usize(at, "a spatial size", 1))?),
                None => None,
            };
            // Defaults from the sizes: keep the size with k3 s1 p1, halve it with k4 s2 p1.
            let halving = target.is_some_and(|t| t * 2 == size.0 && t * 2 == size.1);
            let (k, s, p) = (
                kernels[i].unwrap_or(if halving { 4 } else { 3 }),
                strides[i].unwrap_or(if halving { 2 } else { 1 }),
                paddings[i].unwrap_or(1),
            );
            let out = |n: usize| (n + 2 * p).checked_sub(k).map(|m| m / s + 1);
            let (Some(h), Some(w)) = (out(size.0), out(size.1)) else {
                let e = self.invalid(
                    format!(
                        "kernel {k} is larger than the padded input ({}×{})",
                        size.0, size.1
                    ),
                    item.span,
                    format!("kernel {k} does not fit"),
                    None,
                );
                self.cx.error(e);
                return None;
            };
            if let Some(t) = target
                && (t != h || t != w)
            {
                let e = self.invalid(
                    format!("this layer maps size {}×{} to {h}×{w} (kernel {k}, stride {s}, padding {p}), not {t}", size.0, size.1),
                    item.span,
                    format!("gives {h}×{w}, not {t}×{t}"),
                    Some("`C@S` with S half the input size halves it (kernel 4, stride 2), `C` keeps it, or set `kernel`, `stride`, `padding`".into()),
                );
                self.cx.error(e);
                return None;
            }
            self.layers.push(Layer::Conv2d {
                in_channels: self.shape[0],
                out_channels: channels,
                kernel: k,
                stride: s,
                padding: p,
            });
            self.layers.push(Layer::Activation(act));
            self.shape = vec![channels, h, w];
        }
        Some(())
    }

    fn deconv(&mut self, stage: &ast::Stage, chain: &[ast::ChainItem]) -> Option<()> {
        self.options(stage, &["act", "out"])?;
        let act = self.act_option(stage, "act", Activation::LeakyRelu(0.2))?;
        let out = self.act_option(stage, "out", Activation::Identity)?;
        if chain.is_empty() {
            let e = self.invalid(
                "`deconv` needs at least one layer",
                stage.span,
                "no layer",
                Some("e.g. `deconv(z -> 64@7 -> 1@28)`".into()),
            );
            self.cx.error(e);
            return None;
        }
        match self.shape.len() {
            1 => {
                self.layers.push(Layer::Unflatten {
                    channels: self.shape[0],
                });
                self.shape = vec![self.shape[0], 1, 1];
            }
            3 if self.shape[1] == self.shape[2] => {}
            _ => {
                let mut e = self.invalid(
                    format!(
                        "`deconv` needs a vector or a square image input, found {}",
                        shape_text(&self.shape)
                    ),
                    stage.name.span,
                    format!("input of shape {}", shape_text(&self.shape)),
                    None,
                );
                if let CheckError::InvalidNetwork { related, .. } = &mut e {
                    *related = self.input_declaration();
                }
                self.cx.error(e);
                return None;
            }
        }
        for (i, item) in chain.iter().enumerate() {
            let channels = self.cx.ok(const_usize(&item.value, "a channel count", 1))?;
            let Some(at) = &item.at else {
                let e = self.invalid(
                    "each `deconv` layer states its output size as `CHANNELS@SIZE`",
                    item.span,
                    "no `@SIZE`",
                    Some(format!(
                        "e.g. `{}@{}`",
                        show(&item.value),
                        self.shape[1] * 2
                    )),
                );
                self.cx.error(e);
                return None;
            };
            let to = self.cx.ok(const_usize(at, "a spatial size", 1))?;
            let from = self.shape[1];
            let (kernel, stride, padding) = match (from, to) {
                (1, n) => (n, 1, 0),
                (a, b) if b == 2 * a => (4, 2, 1),
                (a, b) if a == b => (3, 1, 1),
                _ => {
                    self.cx.error(CheckError::DeconvSize {
                        from,
                        to,
                        span: item.span,
                    });
                    return None;
                }
            };
            self.layers.push(Layer::ConvTranspose2d {
                in_channels: self.shape[0],
                out_channels: channels,
                kernel,
                stride,
                padding,
            });
            self.layers.push(Layer::Activation(if i + 1 < chain.len() {
                act
            } else {
                out
            }));
            if i + 1 == chain.len() && out == Activation::Identity {
                self.layers.pop();
            }
            self.shape = vec![channels, to, to];
        }
        Some(())
    }
}

fn stage_as_call(stage: &ast::Stage) -> ast::Call {
    ast::Call {
        callee: stage.name.clone(),
        given: None,
        args: stage.args.clone(),
        parenthesized: stage.parenthesized,
        span: stage.span,
    }
}

/// `relu`, `lrelu(0.2)`, `swish`, ...
pub(crate) fn activation(e: &ast::Expr) -> Result<Activation, CheckError> {
    let (name, args, span) = match &e.kind {
        ast::ExprKind::Name(n) => (n, Vec::new(), n.span),
        ast::ExprKind::Call(c) => (&c.callee, c.args.iter().collect::<Vec<_>>(), c.callee.span),
        _ => {
            return Err(CheckError::InvalidValue {
                what: "an activation".into(),
                expected: format!("one of {}", one_of(ACTIVATIONS)),
                span: e.span,
                found: show(e),
                help: None,
            });
        }
    };
    let act = match name.name.as_str() {
        "relu" => Activation::Relu,
        "gelu" => Activation::Gelu,
        "swish" | "silu" => Activation::Swish,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "softplus" => Activation::Softplus,
        "identity" => Activation::Identity,
        "lrelu" => {
            let slope = match args.as_slice() {
                [] => 0.2,
                [a] if a.name.is_none() => const_number(&a.value)
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| CheckError::InvalidValue {
                        what: "the slope of `lrelu`".into(),
                        expected: "a number ≥ 0".into(),
                        span: a.value.span,
                        found: show(&a.value),
                        help: Some("e.g. `lrelu(0.2)`".into()),
                    })?,
                _ => {
                    return Err(CheckError::WrongArity {
                        callee: "lrelu".into(),
                        expected: "one slope".into(),
                        found: args.len(),
                        span: e.span,
                        help: Some("e.g. `lrelu(0.2)`".into()),
                    });
                }
            };
            return Ok(Activation::LeakyRelu(slope));
        }
        other => {
            return Err(CheckError::UnknownActivation {
                name: other.into(),
                span,
                help: did_you_mean(other, ACTIVATIONS.iter().copied())
                    .or_else(|| Some(format!("activations: {}", one_of(ACTIVATIONS)))),
            });
        }
    };
    if !args.is_empty() {
        return Err(CheckError::WrongArity {
            callee: name.name.clone(),
            expected: "no arguments".into(),
            found: args.len(),
            span: e.span,
            help: Some(format!("write `{}`", name.name)),
        });
    }
    Ok(act)
}

pub(crate) fn shape_text(dims: &[usize]) -> String {
    format!(
        "[{}]",
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
