#!/usr/bin/env python3
"""PyTorch side of the ebmc-vs-PyTorch benchmark (see bench/README.md).

Same workloads and flags as bench/ebmc_bench.rs; prints one JSON line with per-repeat timings
(seconds) after warm-up. Eager mode, fp32, CPU, written as a PyTorch user would (autograd.grad with
respect to the sampled variable inside chains, one backward per loss):

  prior      one prior Langevin step, MLP 100->200->200->1 (LeakyReLU 0.2)
  posterior  one posterior Langevin step through the 32x32 DCGAN generator (sigma = 0.3) + prior
  lebm       one short_run_mle iteration of specs/lebm_mnist.yaml
  cebm       one contrastive_divergence iteration of specs/cebm_gmm.yaml on MNIST
  ssl        one amortized_ssl iteration of specs/ssl_mnist.yaml
  gemm       a 2048^3 fp32 matrix product (the attainable rate, for compute floors)

Usage: torch_bench.py WORKLOAD [--repeats N] [--warmup N] [--batch B] [--latent L] [--steps K]
                      [--threads T] [--data DIR] [--seed S]
"""

import argparse
import json
import math
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["prior", "posterior", "lebm", "cebm", "ssl", "gemm"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--latent", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="chain length for prior/posterior")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--data", default="data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--breakdown", action="store_true",
                   help="prior/posterior: also time the gradient call and the noise draw alone")
    p.add_argument("--json", action="store_true", help="accepted for symmetry; output is always JSON")
    return p.parse_args()


# ---------------------------------------------------------------------------------------------
# Networks (the layer expansions `ebmc ir` prints for the specs)


def mlp(sizes, act=lambda: nn.LeakyReLU(0.2), out=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    if out is not None:
        layers.append(out)
    return nn.Sequential(*layers)


def dcgan32(nz):
    """The latent-EBM paper's SVHN generator (ngf = 64), input [B, nz, 1, 1]."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, 512, 4, 1, 0), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(128, 3, 4, 2, 1), nn.Tanh(),
    )


def lebm_mnist_generator(nz):
    """deconv(z -> 128@7 -> 64@14 -> 1@28, act = lrelu(0.2), out = tanh)."""
    return nn.Sequential(
        nn.ConvTranspose2d(nz, 128, 7, 1, 0), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh(),
    )


def cebm_statistics():
    """conv(x -> 32 -> 32 -> 64 -> 64, kernel [3,4,4,4], stride [1,2,2,2], padding 1, swish)
    -> linear([2, 128]) on 28x28 MNIST: 64·3·3 = 576 features."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.SiLU(),
        nn.Conv2d(32, 32, 4, 2, 1), nn.SiLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.SiLU(),
        nn.Conv2d(64, 64, 4, 2, 1), nn.SiLU(),
        nn.Flatten(), nn.Linear(576, 256),
    )


def freeze(*nets):
    """Timing-only workloads (a), (b): no parameter gradients anywhere, as in ebmc's detached chains."""
    for n in nets:
        for p in n.parameters():
            p.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Latent Langevin (proper form: drift s^2/2 on grad log p, noise s; reference N(0, I) included)


def langevin(z, steps, s, grad_log_p):
    """z <- z + s^2/2 * grad log p(z) + s * eps, with grad log p = -(grad U + z)."""
    for _ in range(steps):
        z = z.detach().requires_grad_(True)
        g = grad_log_p(z)
        with torch.no_grad():
            z = z + (s * s / 2) * g + s * torch.randn_like(z)
    return z.detach()


def prior_grad(f):
    """grad of f(z) + log N(z; 0, I); f is the log-tilt (the spec's `prior: f(z)`)."""
    def grad(z):
        return torch.autograd.grad(f(z).sum(), z)[0] - z
    return grad


def posterior_grad(f, g, x, sigma):
    """grad of f(z) + log N(z; 0, I) + log N(x; g(z), sigma^2)."""
    def grad(z):
        zz = z.view(z.shape[0], -1, 1, 1) if g_is_conv(g) else z
        sse = ((x - g(zz)) ** 2).sum()
        return torch.autograd.grad(f(z).sum() - sse / (2 * sigma * sigma), z)[0] - z
    return grad


def g_is_conv(g):
    return isinstance(g[0], nn.ConvTranspose2d)


def gen(g, z):
    return g(z.view(z.shape[0], -1, 1, 1)) if g_is_conv(g) else g(z)


# ---------------------------------------------------------------------------------------------
# Workloads. Each returns (run_once, units per run, extra JSON fields).


def workload_prior(a):
    nz = a.latent or 100
    f = mlp([nz, 200, 200, 1])
    freeze(f)
    steps = a.steps or 60
    grad = prior_grad(f)

    def run():
        z = langevin(torch.randn(a.batch, nz), steps, 0.4, grad)
        z.sum().item()
    return run, steps, {"chain_steps": steps, "per": "step", "breakdown": lambda: breakdown(a, grad, nz)}


def workload_posterior(a):
    nz = a.latent or 100
    f, g = mlp([nz, 200, 200, 1]), dcgan32(nz)
    freeze(f, g)
    x = torch.rand(a.batch, 3, 32, 32) * 2 - 1  # timing only
    steps = a.steps or 3
    grad = posterior_grad(f, g, x, 0.3)

    def run():
        z = langevin(torch.randn(a.batch, nz), steps, 0.1, grad)
        z.sum().item()
    return run, steps, {"chain_steps": steps, "per": "step", "breakdown": lambda: breakdown(a, grad, nz)}


def breakdown(a, grad, nz):
    """--breakdown: the gradient call (autograd.grad w.r.t. z) and the noise draw, timed alone."""
    z = torch.randn(a.batch, nz).requires_grad_(True)
    return {"median_grad_call_s": timed(a, lambda: grad(z)),
            "median_noise_s": timed(a, lambda: torch.randn_like(z))}


def timed(a, f):
    for _ in range(a.warmup):
        f()
    times = []
    for _ in range(max(1, a.repeats)):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def load_mnist(data_dir):
    """MNIST training images in [-1, 1], [60000, 1, 28, 28], and labels."""
    raw = np.fromfile(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte"), dtype=np.uint8, offset=16)
    labels = np.fromfile(os.path.join(data_dir, "mnist", "train-labels-idx1-ubyte"), dtype=np.uint8, offset=8)
    x = torch.from_numpy(raw.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0 * 2.0 - 1.0)
    return x, torch.from_numpy(labels.astype(np.int64))


class Batches:
    """Fresh minibatches from a fixed permutation (as ebmc's run loop draws them)."""

    def __init__(self, x, batch, seed):
        self.x, self.batch = x, batch
        self.order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        self.next = 0

    def __call__(self):
        if self.next + self.batch > len(self.order):
            self.next = 0
        idx = self.order[self.next:self.next + self.batch]
        self.next += self.batch
        return self.x[idx]


def adam(net_or_params, lr, betas=(0.9, 0.999)):
    params = net_or_params.parameters() if isinstance(net_or_params, nn.Module) else net_or_params
    return torch.optim.Adam(params, lr=lr, betas=betas)


def workload_lebm(a):
    """short_run_mle: posterior chain (20 x 0.1) and prior chain (60 x 0.4) from N(0, I) with the
    current parameters, then one backward of loss_g + loss_e and an Adam step on f and g."""
    nz, sigma = a.latent or 16, 0.3
    f, g = mlp([nz, 200, 200, 1]), lebm_mnist_generator(nz)
    opts = [adam(f, 2e-5, (0.5, 0.999)), adam(g, 1e-4, (0.5, 0.999))]
    batches = Batches(load_mnist(a.data)[0], a.batch, a.seed)
    log_norm = -784 * (math.log(sigma) + LOG_2PI / 2)

    def log_p0(z):
        return -0.5 * (z * z).sum(1) - nz * LOG_2PI / 2

    def run():
        x = batches()
        b = x.shape[0]
        z_post = langevin(torch.randn(b, nz), 20, 0.1, posterior_grad(f, g, x, sigma))
        z_prior = langevin(torch.randn(b, nz), 60, 0.4, prior_grad(f))
        mean = gen(g, z_post)
        log_lik = -((x - mean) ** 2).flatten(1).sum(1) / (2 * sigma * sigma) + log_norm
        loss_g = -log_lik.mean()
        lp_post = (f(z_post).squeeze(1) + log_p0(z_post)).mean()
        lp_prior = (f(z_prior).squeeze(1) + log_p0(z_prior)).mean()
        loss_e = lp_prior - lp_post
        mse = ((mean.detach() - x) ** 2).mean()
        for o in opts:
            o.zero_grad(set_to_none=True)
        (loss_g + loss_e).backward()
        for o in opts:
            o.step()
        [t.item() for t in (loss_g, loss_e, lp_post, lp_prior, mse)]
    return run, 1, {"per": "iteration"}


def gaussian_log_partition(eta1, eta2):
    """Sum over the last axis of -eta1^2 / (4 eta2) - 1/2 log(-2 eta2) (2 pi cancels)."""
    return (-eta1 * eta1 / (4 * eta2) - 0.5 * torch.log(-2 * eta2)).sum(-1)


def workload_cebm(a):
    """contrastive_divergence with the GMM-CEBM marginal energy E(x) (y and z summed out in closed
    form): SGLD 60 x (step 2.0, noise 7.5e-3) from a 5000-state replay buffer (5% reinit), data
    noise 0.03, energy regulariser 1e-3, one Adam step (lr 1e-4) on all parameters."""
    k, d = 10, 128
    t = cebm_statistics()
    mu = nn.Parameter(torch.randn(k, d))
    log_sigma = nn.Parameter(torch.zeros(k, d))
    opt = adam(list(t.parameters()) + [mu, log_sigma], 1e-4)
    batches = Batches(load_mnist(a.data)[0], a.batch, a.seed)
    buffer = torch.rand(5000, 1, 28, 28) * 2 - 1

    def energy(x):
        stats = t(x).view(-1, 2, d)
        t1, t2 = stats[:, 0], -stats[:, 1] ** 2  # the spec's -dot(t1, z) + dot(sq(t2), sq(z))
        prec = torch.exp(-2 * log_sigma)
        lam1, lam2 = mu * prec, -0.5 * prec  # natural parameters of N(mu_k, sigma_k^2)
        post = gaussian_log_partition(lam1 + t1[:, None], lam2 + t2[:, None])  # [B, K]
        prior = gaussian_log_partition(lam1, lam2)  # [K]
        return -(torch.logsumexp(post - prior, dim=1) - math.log(k))

    def sgld(x):
        energies = []
        for _ in range(60):
            x = x.detach().requires_grad_(True)
            e = energy(x)
            g = torch.autograd.grad(e.sum(), x)[0]
            energies.append(e.detach().mean().item())
            with torch.no_grad():
                x = x - 1.0 * g + 7.5e-3 * torch.randn_like(x)
        return x.detach()

    def run():
        nonlocal buffer
        x = batches()
        b = x.shape[0]
        x_data = x + 0.03 * torch.randn_like(x)
        idx = torch.randint(0, len(buffer), (b,))
        fresh = torch.rand(b) < 0.05
        x0 = torch.where(fresh[:, None, None, None], torch.rand(b, 1, 28, 28) * 2 - 1, buffer[idx])
        x_model = sgld(x0)
        buffer[idx] = x_model
        e_data, e_model = energy(x_data), energy(x_model)
        reg = 1e-3 * ((e_data ** 2).mean() + (e_model ** 2).mean())
        loss = e_data.mean() - e_model.mean() + reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        [v.item() for v in (loss, e_data.mean(), e_model.mean(), reg)]
    return run, 1, {"per": "iteration"}


def mutual_information(probs):
    """H(mean_batch p(y|z)) - mean_batch H(p(y|z))."""
    def plogp(p):
        return p * torch.log(p + 1e-15)
    return -plogp(probs.mean(0)).sum() + plogp(probs).sum(1).mean()


def workload_ssl(a):
    """amortized_ssl: labelled step (10 · CE on the encoder mean, f and q), reparameterised z+ from
    q, 60 persistent prior Langevin steps (10000 chains), ELBO step on g and q with 15 · MI, prior
    step on f; the reconstruction-error metric at the encoder mean."""
    nz, sigma, k = a.latent or 32, 0.3, 10
    f = mlp([nz, 200, 200, k])
    g = mlp([nz, 512, 512, 784], out=nn.Tanh())
    q = mlp([784, 512, 512, 2 * nz])
    opt_f, opt_g, opt_q = adam(f, 1e-4), adam(g, 1e-4, (0.5, 0.999)), adam(q, 1e-4)
    x_all, y_all = load_mnist(a.data)
    x_all = x_all.flatten(1)
    # 10 labelled examples per class (which ones does not matter for timing).
    lab = torch.cat([torch.nonzero(y_all == c)[:10, 0] for c in range(k)])
    x_lab, y_lab = x_all[lab], y_all[lab]
    batches = Batches(x_all, a.batch, a.seed)
    chains = torch.randn(10000, nz)
    log_norm = -784 * (math.log(sigma) + LOG_2PI / 2)

    def log_prior(z, logits):
        """The marginal prior: logsumexp_y f_y(z) + log N(z; 0, I)."""
        return torch.logsumexp(logits, 1) - 0.5 * (z * z).sum(1) - nz * LOG_2PI / 2

    def grad_log_prior(z):
        return torch.autograd.grad(torch.logsumexp(f(z), 1).sum(), z)[0] - z

    def step(loss, opts):
        for o in (opt_f, opt_g, opt_q):
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()

    def run():
        nonlocal chains
        x = batches()
        b = x.shape[0]
        # 1. labelled step on f and q
        i = torch.randint(0, len(lab), (b,))
        logits = f(q(x_lab[i])[:, :nz])
        ce = F.cross_entropy(logits, y_lab[i])
        acc = (logits.argmax(1) == y_lab[i]).float().mean()
        step(10 * ce, [opt_f, opt_q])
        # 2. z+ ~ q(z | x)
        h = q(x)
        mean, log_std = h[:, :nz], h[:, nz:]
        z_q = mean + torch.exp(log_std) * torch.randn_like(mean)
        # 3. persistent prior chains
        pick = torch.randperm(len(chains))[:b]
        z_prior = langevin(chains[pick], 60, 0.4, grad_log_prior)
        chains[pick] = z_prior
        # 4. ELBO step on g and q
        log_lik = (-((x - g(z_q)) ** 2).sum(1) / (2 * sigma * sigma) + log_norm).mean()
        logits_q = f(z_q)
        entropy = (log_std.sum(1) + nz / 2 * (1 + LOG_2PI)).mean()
        neg_elbo = -(log_lik + log_prior(z_q, logits_q).mean() + entropy)
        mi = mutual_information(F.softmax(logits_q, 1))
        step(neg_elbo - 15 * mi, [opt_g, opt_q])
        # 5. prior step on f, z+ detached
        z_d = z_q.detach()
        logits_d = f(z_d)
        loss_prior = log_prior(z_prior, f(z_prior)).mean() - log_prior(z_d, logits_d).mean()
        mi_d = mutual_information(F.softmax(logits_d, 1))
        step(loss_prior - 15 * mi_d, [opt_f])
        with torch.no_grad():
            mse = ((g(mean.detach()) - x) ** 2).mean()
        [v.item() for v in (ce, acc, neg_elbo, mi, loss_prior, mse)]
    return run, 1, {"per": "iteration"}


def workload_gemm(a):
    """The attainable fp32 rate: a 2048^3 matrix product (MKL), for the compute floors."""
    n = 2048
    x, y = torch.randn(n, n), torch.randn(n, n)

    def run():
        torch.mm(x, y)
    return run, 1, {"per": "gemm", "flop": 2 * n ** 3}


WORKLOADS = {
    "prior": workload_prior,
    "posterior": workload_posterior,
    "lebm": workload_lebm,
    "cebm": workload_cebm,
    "ssl": workload_ssl,
    "gemm": workload_gemm,
}


def main():
    a = parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    run, per, extra = WORKLOADS[a.workload](a)
    for _ in range(a.warmup):
        run()
    times = []
    for _ in range(max(1, a.repeats)):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) / per)
    out = {
        "side": "pytorch",
        "workload": a.workload,
        "batch": a.batch,
        "latent": a.latent,
        "repeats": len(times),
        "warmup": a.warmup,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "times_s": times,
        "median_s": statistics.median(times),
    }
    part = extra.pop("breakdown", None)
    if a.breakdown and part:
        out["breakdown"] = part()
    out.update(extra)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
