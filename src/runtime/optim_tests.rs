//! The optimizers against hand-written references, and their checkpoint state.

use super::*;
use candle_core::Var;

fn params() -> Params {
    let dev = Device::Cpu;
    let mut m = HashMap::new();
    m.insert(
        "networks.f.w".to_string(),
        Tensor::new(&[[0.3f64, -1.2], [2.0, 0.01], [-0.7, 0.5]], &dev).unwrap(),
    );
    m.insert(
        "networks.f.b".to_string(),
        Tensor::new(&[0.1f64, -0.2], &dev).unwrap(),
    );
    m.insert(
        "networks.g.w".to_string(),
        Tensor::new(&[1.5f64, -0.25, 3.0], &dev).unwrap(),
    );
    Params::from_tensors(&m, &dev, DType::F64).unwrap()
}

fn host(v: &Var) -> Vec<f64> {
    v.as_detached_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// A loss with distinct curvature per element: Σ a ⊙ θ² + 0.3·Σ θ³ over every parameter.
fn loss_grads(p: &Params) -> GradStore {
    let mut total: Option<Tensor> = None;
    for (k, (_, v)) in p.iter().enumerate() {
        let t = v.as_tensor();
        let a = Tensor::arange(1.0f64, 1.0 + t.elem_count() as f64, p.device())
            .unwrap()
            .reshape(t.dims())
            .unwrap()
            .affine(0.5 + k as f64, 0.0)
            .unwrap();
        let l = (t.sqr().unwrap().mul(&a).unwrap().sum_all().unwrap()
            + t.powf(3.0)
                .unwrap()
                .sum_all()
                .unwrap()
                .affine(0.3, 0.0)
                .unwrap())
        .unwrap();
        total = Some(match total {
            None => l,
            Some(s) => (s + l).unwrap(),
        });
    }
    total.unwrap().backward().unwrap()
}

/// PyTorch's Adam on host vectors, in the same operation order.
struct RefAdam {
    lr: f64,
    b1: f64,
    b2: f64,
    wd: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl RefAdam {
    fn step(&mut self, theta: &mut [f64], grad: &[f64]) {
        self.t += 1;
        let bc1 = 1.0 - self.b1.powi(self.t);
        let bc2 = 1.0 - self.b2.powi(self.t);
        for i in 0..theta.len() {
            let g = grad[i] + (theta[i] * self.wd + 0.0);
            self.m[i] = (self.m[i] * self.b1 + 0.0) + (g * (1.0 - self.b1) + 0.0);
            self.v[i] = (self.v[i] * self.b2 + 0.0) + ((g * g) * (1.0 - self.b2) + 0.0);
            let denom = self.v[i].sqrt() * (1.0 / bc2.sqrt()) + 1e-8;
            theta[i] -= (self.m[i] / denom) * (self.lr / bc1) + 0.0;
        }
    }
}

#[test]
fn adam_matches_a_hand_written_adam() {
    let p = params();
    let config = check::Optimizer::Adam {
        lr: 0.01,
        betas: (0.5, 0.999),
        weight_decay: 0.1,
        decay: 1.0,
    };
    let mut opt = Optimizer::new("default", &config, p.select(&["networks"]));
    let mut refs: BTreeMap<String, (Vec<f64>, RefAdam)> = p
        .iter()
        .map(|(k, v)| {
            let n = v.elem_count();
            let r = RefAdam {
                lr: 0.01,
                b1: 0.5,
                b2: 0.999,
                wd: 0.1,
                m: vec![0.0; n],
                v: vec![0.0; n],
                t: 0,
            };
            (k.to_string(), (host(v), r))
        })
        .collect();
    let mut worst: f64 = 0.0;
    for _ in 0..3 {
        let grads = loss_grads(&p);
        for (k, (theta, r)) in refs.iter_mut() {
            let g = grads
                .get(p.get(k).as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            r.step(theta, &g);
        }
        opt.step(&grads, &p).unwrap();
        for (k, (theta, _)) in &refs {
            let got = host(p.get(k));
            for (a, b) in got.iter().zip(theta) {
                let err = (a - b).abs() / b.abs().max(1.0);
                worst = worst.max(err);
                assert!(err <= 2.2e-16, "{k}: {a} vs {b}");
            }
        }
    }
    eprintln!("Adam vs hand-written over 3 steps: worst relative error {worst:.1e}");
}

#[test]
fn each_optimizer_updates_only_its_group() {
    let p = params();
    let before = p.snapshot().unwrap();
    let adam = check::Optimizer::Adam {
        lr: 0.1,
        betas: (0.9, 0.999),
        weight_decay: 0.0,
        decay: 1.0,
    };
    let mut f = Optimizer::new("f", &adam, p.select(&["networks.f"]));
    let mut g = Optimizer::new(
        "g",
        &check::Optimizer::Sgd { lr: 0.5 },
        p.select(&["networks.g"]),
    );
    let grads = loss_grads(&p);
    let gw = grads
        .get(p.get("networks.g.w").as_tensor())
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    f.step(&grads, &p).unwrap();
    assert_eq!(
        host(p.get("networks.g.w")),
        before["networks.g.w"].to_vec1::<f64>().unwrap()
    );
    assert_ne!(
        host(p.get("networks.f.b")),
        before["networks.f.b"].to_vec1::<f64>().unwrap()
    );
    // Adam's first step moves every coordinate by about lr.
    for (a, b) in host(p.get("networks.f.b"))
        .iter()
        .zip(before["networks.f.b"].to_vec1::<f64>().unwrap())
    {
        assert!(((a - b).abs() - 0.1).abs() < 1e-6, "{a} {b}");
    }
    g.step(&grads, &p).unwrap();
    let want: Vec<f64> = before["networks.g.w"]
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .zip(&gw)
        .map(|(t, g)| t - 0.5 * g)
        .collect();
    assert_eq!(host(p.get("networks.g.w")), want);
    // A parameter without a gradient is left alone.
    let only_g = (p.get("networks.g.w").as_tensor().sum_all().unwrap())
        .backward()
        .unwrap();
    let fb = host(p.get("networks.f.b"));
    f.step(&only_g, &p).unwrap();
    assert_eq!(host(p.get("networks.f.b")), fb);
}

#[test]
fn decay_scales_the_learning_rate() {
    let adam = check::Optimizer::Adam {
        lr: 0.1,
        betas: (0.9, 0.999),
        weight_decay: 0.0,
        decay: 0.5,
    };
    let mut o = Optimizer::new("f", &adam, vec![]);
    o.decay_lr();
    o.decay_lr();
    assert_eq!(o.lr(), 0.025);
    let mut s = Optimizer::new("g", &check::Optimizer::Sgd { lr: 0.1 }, vec![]);
    s.decay_lr();
    assert_eq!(s.lr(), 0.1);
}

#[test]
fn state_round_trip_resumes_exactly() {
    let adam = check::Optimizer::Adam {
        lr: 0.05,
        betas: (0.5, 0.999),
        weight_decay: 0.01,
        decay: 0.9,
    };
    // Run A: 4 steps straight.
    let pa = params();
    let mut a = Optimizer::new("default", &adam, pa.select(&["networks"]));
    for i in 0..4 {
        if i == 2 {
            a.decay_lr();
        }
        a.step(&loss_grads(&pa), &pa).unwrap();
    }
    // Run B: 2 steps, checkpoint, a fresh optimizer and parameters, restore, 2 more steps.
    let pb = params();
    let mut b = Optimizer::new("default", &adam, pb.select(&["networks"]));
    for _ in 0..2 {
        b.step(&loss_grads(&pb), &pb).unwrap();
    }
    let state = b.state().unwrap();
    let saved = pb.snapshot().unwrap();
    assert!(state.contains_key("optim.default.networks.f.w.m"));
    assert!(state.contains_key("optim.default.networks.f.w.v"));
    assert!(state.contains_key("optim.default.networks.f.w.step"));
    assert!(state.contains_key("optim.default.lr"));
    let pc = Params::from_tensors(&saved, &Device::Cpu, DType::F64).unwrap();
    let mut c = Optimizer::new("default", &adam, pc.select(&["networks"]));
    c.load_state(&state, &pc).unwrap();
    for i in 2..4 {
        if i == 2 {
            c.decay_lr();
        }
        c.step(&loss_grads(&pc), &pc).unwrap();
    }
    for (k, v) in pa.iter() {
        assert_eq!(host(v), host(pc.get(k)), "{k}");
    }
    assert_eq!(a.lr(), c.lr());
    // A moment of the wrong shape is an error.
    let mut bad = state.clone();
    bad.insert(
        "optim.default.networks.f.w.m".into(),
        Tensor::zeros(4, DType::F64, &Device::Cpu).unwrap(),
    );
    let err = c.load_state(&bad, &pc).unwrap_err();
    assert_eq!(err.code_str(), "ebmc::run::corrupt_state");
}

#[test]
fn the_host_adam_update_matches_the_tensor_ops_bit_for_bit() {
    let bits = crate::runtime::bit_pattern;
    for dtype in [DType::F32, DType::F64] {
        let mut rng = crate::runtime::rng::Rng::new(3);
        let mut draw = |s: f64| rng.normal(&[4, 5], 0.0, s, &Device::Cpu, dtype).unwrap();
        let (theta, g, m) = (draw(1.0), draw(0.5), draw(0.1));
        let v = draw(0.1).sqr().unwrap();
        // Zeros of both signs go through the same roundings.
        let keep = g.abs().unwrap().gt(0.3).unwrap();
        let g = keep.where_cond(&g, &g.zeros_like().unwrap()).unwrap();
        for weight_decay in [0.0, 1e-2] {
            let c = AdamConsts {
                beta1: 0.5,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay,
                step_size: 1e-3 / (1.0 - 0.5f64.powi(3)),
                inv_sqrt_bc2: 1.0 / (1.0 - 0.999f64.powi(3)).sqrt(),
            };
            for moments in [None, Some((&m, &v))] {
                let ops = adam_ops(&theta, &g, moments, &c).unwrap();
                let fused = match dtype {
                    DType::F32 => adam_host::<f32>(&theta, &g, moments, &c),
                    _ => adam_host::<f64>(&theta, &g, moments, &c),
                }
                .unwrap();
                for (a, b) in [(&ops.0, &fused.0), (&ops.1, &fused.1), (&ops.2, &fused.2)] {
                    assert_eq!(bits(a), bits(b), "{dtype:?} wd {weight_decay}");
                }
            }
        }
    }
}
