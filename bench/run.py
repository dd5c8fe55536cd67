#!/usr/bin/env python3
"""Driver of the ebmc-vs-PyTorch benchmark (see bench/README.md).

Builds the Rust side once (`cargo bench --bench ebmc --no-run`), then for every measurement runs
the ebmc binary and bench/torch_bench.py alternately over several rounds (so both see the same
machine state), takes the median of the per-round medians, and writes

  bench/results/latest.json       every raw timing, the machine, thread counts, versions
  docs/performance-scaling.png    time per step against batch and latent size, both sides
  (stdout)                        the markdown table of docs/performance.md

Run from anywhere with the Python that has torch and matplotlib:

  /work/venv-torch/bin/python bench/run.py            # the full measurement (about 15 min)
  /work/venv-torch/bin/python bench/run.py --quick    # smoke run (bench/results/quick.json)

Needs python3 stdlib (+ matplotlib for the figure; skipped with a warning when missing).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Main table: (workload, label, extra flags, repeats full/quick). `steps` for the chains: the
# prior step is timed over the paper's 60-step chain, the generator step over a 3-step chain.
TABLE = [
    ("prior", "(a) prior Langevin step, MLP 100→200→200→1", ["--steps", "60", "--breakdown"], 30, 3),
    ("posterior", "(b) posterior Langevin step, 32×32 DCGAN", ["--steps", "3", "--breakdown"], 5, 1),
    ("lebm", "(c) short_run_mle iteration, lebm_mnist", [], 5, 1),
    ("cebm", "(d) contrastive_divergence iteration, cebm_gmm on MNIST", [], 3, 1),
    ("ssl", "(e) amortized_ssl iteration, ssl_mnist", [], 20, 2),
    ("compile", "(f) compile the slowest spec in specs/", [], 30, 3),
]
TARGETS = {  # the targets, as ebmc/PyTorch time ratios (compile: absolute)
    "prior": ("≤ 0.5", lambda r, e: r <= 0.5),
    "posterior": ("≤ 1", lambda r, e: r <= 1.0),
    "lebm": ("< 1", lambda r, e: r < 1.0),
    "cebm": ("< 1", lambda r, e: r < 1.0),
    "ssl": ("< 1", lambda r, e: r < 1.0),
    "compile": ("< 20 ms", lambda r, e: e < 0.020),
}
BATCHES = [25, 50, 100, 200, 400]
LATENTS = [16, 64, 100, 256]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, few repeats, 2 sizes")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; quick 1)")
    p.add_argument("--python", default=sys.executable, help="the Python with torch (default: this one)")
    p.add_argument("--threads", type=int, default=None,
                   help="pin both sides to N threads (default: as `ebmc run` chooses for the spec, both sides)")
    p.add_argument("--only", default=None, help="comma-separated workloads of the main table")
    p.add_argument("--no-scaling", action="store_true", help="skip the batch/latent sweeps")
    p.add_argument("--out", default=None, help="results JSON (default bench/results/latest.json; quick: quick.json)")
    p.add_argument("--plot", default=None, help="figure (default docs/performance-scaling.png; quick: bench/results/quick-scaling.png)")
    return p.parse_args()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def build_ebmc():
    """Builds the bench binary once and returns its path (cargo prints it as a JSON artifact)."""
    log("building the Rust side (cargo bench --bench ebmc --no-run) ...")
    r = sh(["cargo", "bench", "--bench", "ebmc", "--no-run", "--message-format=json"])
    if r.returncode != 0:
        sys.exit(f"cargo build failed:\n{r.stderr[-4000:]}")
    for line in r.stdout.splitlines():
        msg = json.loads(line)
        target = msg.get("target", {})
        if msg.get("reason") == "compiler-artifact" and target.get("name") == "ebmc" \
                and "bench" in target.get("kind", []) and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo did not report the bench executable")


def invoke(cmd):
    """Runs one benchmark process; returns its JSON line plus the load average before it."""
    load = os.getloadavg()[0]
    r = sh(cmd)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-4000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["loadavg_before"] = load
    return out


def flags(job, threads):
    f = ["--batch", str(job["batch"]), "--repeats", str(job["repeats"]), "--warmup", str(job["warmup"])]
    if job.get("latent"):
        f += ["--latent", str(job["latent"])]
    if threads:
        f += ["--threads", str(threads)]
    return f + job["extra"]


def measure(jobs, exe, args, rounds):
    """Every job on both sides, alternating ebmc / PyTorch within each round."""
    for r in range(rounds):
        for i, job in enumerate(jobs):
            log(f"round {r + 1}/{rounds}, {i + 1}/{len(jobs)}: {job['id']}")
            ebmc = invoke([exe, job["workload"]] + flags(job, args.threads))
            job.setdefault("ebmc", []).append(ebmc)
            if job["workload"] != "compile":
                # PyTorch gets the thread count ebmc chose for the same work (fair, and PyTorch's
                # own default would busy-wait a second OpenMP thread where ebmc uses one).
                cmd = [args.python, str(ROOT / "bench" / "torch_bench.py"), job["workload"]]
                job.setdefault("pytorch", []).append(invoke(cmd + flags(job, ebmc["threads"])))
                # Where ebmc chose fewer threads than the machine has, PyTorch also runs on every
                # core: the table compares ebmc with PyTorch at its faster count too.
                cores = os.cpu_count() or 1
                if not args.threads and ebmc["threads"] < cores:
                    job.setdefault("pytorch_all_cores", []).append(invoke(cmd + flags(job, cores)))


def med(runs):
    """Median over rounds of each round's median (robust to one disturbed round)."""
    return statistics.median(r["median_s"] for r in runs) if runs else None


# ------------------------------------------------------------------------------------------------
# Compute floors: multiply-accumulates of the minimal work, at the attainable GEMM rate measured by
# torch_bench.py `gemm` (2048³ sgemm with MKL on all of PyTorch's threads).


def mlp_macs(sizes):
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def convt_macs(layers):
    """layers: (c_in, c_out, k, input size)."""
    return sum(ci * co * k * k * h * h for ci, co, k, h in layers)


def dcgan_macs(nz):
    return convt_macs([(nz, 512, 4, 1), (512, 256, 4, 4), (256, 128, 4, 8), (128, 3, 4, 16)])


def flop(workload, batch=100, latent=None):
    """FLOPs (2 per MAC) of one unit of work. Input gradients cost one forward; a backward with
    parameter gradients two."""
    if workload == "prior":
        return 2 * batch * 2 * mlp_macs([latent or 100, 200, 200, 1])
    if workload == "posterior":
        nz = latent or 100
        return 2 * batch * 2 * (dcgan_macs(nz) + mlp_macs([nz, 200, 200, 1]))
    if workload == "lebm":
        nz = latent or 16
        g = convt_macs([(nz, 128, 7, 1), (128, 64, 4, 7), (64, 1, 4, 14)])
        f = mlp_macs([nz, 200, 200, 1])
        chains = 20 * 2 * (g + f) + 60 * 2 * f
        update = 3 * g + 3 * 2 * f
        return 2 * batch * (chains + update)
    if workload == "cebm":
        t = 1 * 32 * 9 * 784 + 32 * 32 * 16 * 196 + 32 * 64 * 16 * 49 + 64 * 64 * 16 * 9 + 576 * 256
        return 2 * batch * (60 * 2 * t + 2 * 3 * t)
    if workload == "ssl":
        f, g, q = mlp_macs([32, 200, 200, 10]), mlp_macs([32, 512, 512, 784]), mlp_macs([784, 512, 512, 64])
        labelled = 3 * (q + f)
        chains = 60 * 2 * f
        elbo = 3 * (q + g + f)
        prior = 3 * 2 * f
        recon = g
        return 2 * batch * (labelled + chains + elbo + prior + recon)
    return None


# ------------------------------------------------------------------------------------------------
# Environment


def machine():
    info = {"platform": platform.platform(), "cores": os.cpu_count()}
    r = sh(["lscpu"])
    for line in r.stdout.splitlines():
        if line.startswith("Model name:"):
            info["cpu"] = line.split(":", 1)[1].strip()
        if line.startswith("Flags:"):
            fl = line.split()
            info["simd"] = [x for x in ("avx2", "fma", "avx512f") if x in fl]
    return info


def versions(python):
    v = {"rustc": sh(["rustc", "-V"]).stdout.strip()}
    lock = (ROOT / "Cargo.lock").read_text()
    m = re.search(r'name = "candle-core"\nversion = "([^"]+)"', lock)
    v["candle-core"] = m.group(1) if m else None
    r = subprocess.run([python, "-c", "import torch;print(torch.__version__);print(torch.__config__.parallel_info())"],
                       capture_output=True, text=True)
    lines = r.stdout.splitlines()
    v["torch"] = lines[0] if lines else None
    v["torch_parallel_info"] = "\n".join(lines[1:])
    v["python"] = sys.version.split()[0]
    return v


# ------------------------------------------------------------------------------------------------
# Output


def fmt_ms(s):
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def table(rows):
    out = ["| workload | threads | ebmc ms | PyTorch ms, same threads | PyTorch ms, best threads | "
           "ebmc / PyTorch (best) | compute floor ms | target | met |",
           "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        ratio = f"{r['ratio_best']:.2f}" if r["ratio_best"] is not None else "—"
        met = "yes" if r["met"] else "no" if r["met"] is not None else "—"
        best = (f"{fmt_ms(r['pytorch_best_s'])} ({r['pytorch_best_threads']})"
                if r["pytorch_best_s"] is not None else "—")
        out.append(f"| {r['label']} | {r['ebmc_threads']} | {fmt_ms(r['ebmc_s'])} | {fmt_ms(r['pytorch_s'])} | "
                   f"{best} | {ratio} | {fmt_ms(r['floor_s'])} | {r['target']} | {met} |")
    return "\n".join(out)


def summary_rows(jobs, gflops):
    rows = []
    for job in jobs:
        e, p = med(job.get("ebmc", [])), med(job.get("pytorch", []))
        p_all = med(job.get("pytorch_all_cores", []))
        ratio = e / p if e and p else None
        # PyTorch at whichever thread count was faster: the targets are judged against it.
        best, best_threads = p, job["pytorch"][0]["threads"] if job.get("pytorch") else None
        if p_all is not None and p_all < p:
            best, best_threads = p_all, job["pytorch_all_cores"][0]["threads"]
        ratio_best = e / best if e and best else None
        fl = flop(job["workload"], job["batch"], job.get("latent"))
        target, ok = TARGETS[job["workload"]]
        met = ok(ratio_best, e) if (ratio_best is not None or job["workload"] == "compile") else None
        rows.append({
            "workload": job["workload"], "label": job["label"], "batch": job["batch"],
            "ebmc_s": e, "pytorch_s": p, "ratio": ratio,
            "pytorch_best_s": best, "pytorch_best_threads": best_threads, "ratio_best": ratio_best,
            "floor_s": fl / gflops / 1e9 if fl and gflops else None, "flop": fl,
            "ebmc_threads": job["ebmc"][0]["threads"],
            "pytorch_threads": job["pytorch"][0]["threads"] if job.get("pytorch") else None,
            "target": target, "met": met,
        })
    return rows


def breakdown_table(jobs):
    """Per-step parts of (a) and (b), timed alone by each side (`--breakdown`, one thread for ebmc's
    parts), medians over rounds."""
    out = ["| step | side | whole step ms | gradient call ms | noise draw ms | rest (update, chain overhead) ms |",
           "|---|---|---:|---:|---:|---:|"]
    for job in jobs:
        for side in ("ebmc", "pytorch"):
            runs = [r for r in job.get(side, []) if "breakdown" in r]
            if not runs:
                continue
            step = med(runs)
            grad = statistics.median(r["breakdown"]["median_grad_call_s"] for r in runs)
            noise = statistics.median(r["breakdown"]["median_noise_s"] for r in runs)
            # ebmc times the parts on one thread over the whole batch; a chain split by rows runs
            # them on several threads at once, so the step is no sum of them.
            split = runs[0].get("chain_threads", 1)
            rest = (f"— (rows on {split} threads)" if split > 1
                    else fmt_ms(max(step - grad - noise, 0.0)))
            out.append(f"| {job['id']} | {side} | {fmt_ms(step)} | {fmt_ms(grad)} | {fmt_ms(noise)} | {rest} |")
    return "\n".join(out) if len(out) > 2 else ""


def plot(scaling, gflops, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        log("matplotlib missing: no figure")
        return
    sweeps = [(w, axis) for w in ("prior", "posterior") for axis in ("batch", "latent")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (w, axis) in zip(axes.flat, sweeps):
        jobs = [j for j in scaling if j["workload"] == w and j["axis"] == axis]
        xs = [j[axis] if axis == "batch" else j["latent"] for j in jobs]
        for side, style in (("ebmc", "o-"), ("pytorch", "s-")):
            ax.plot(xs, [med(j[side]) * 1e3 for j in jobs], style, label=side)
        if gflops:
            floor = [flop(w, j["batch"], j["latent"]) / gflops / 1e6 for j in jobs]
            ax.plot(xs, floor, "k--", label=f"floor at {gflops:.0f} GFLOP/s")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        # Plain numbers on the time axis; minor ticks labelled at 2× and 5× only.
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlabel("batch size" if axis == "batch" else "latent size")
        ax.set_ylabel("ms per Langevin step")
        fixed = "latent 100" if axis == "batch" else "batch 100"
        ax.set_title(f"{'(a) prior MLP' if w == 'prior' else '(b) DCGAN posterior'} vs {axis} ({fixed})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    log(f"wrote {path}")


# ------------------------------------------------------------------------------------------------


def make_jobs(args):
    quick = args.quick
    only = set(args.only.split(",")) if args.only else None
    main = []
    for w, label, extra, full, q in TABLE:
        if only and w not in only:
            continue
        warm = 1 if quick or w in ("lebm", "cebm", "posterior") else 2
        main.append({"id": w, "workload": w, "label": label, "batch": 100, "extra": extra,
                     "repeats": q if quick else full, "warmup": warm})
    scaling = []
    if not args.no_scaling:
        batches, latents = ([25, 100], [16, 100]) if quick else (BATCHES, LATENTS)
        for w, steps, reps in (("prior", "60", 10), ("posterior", "1", 3)):
            reps = 2 if quick else reps
            for b in batches:
                scaling.append({"id": f"{w} batch {b}", "workload": w, "axis": "batch", "batch": b,
                                "latent": 100, "extra": ["--steps", steps], "repeats": reps, "warmup": 1})
            for latent in latents:
                scaling.append({"id": f"{w} latent {latent}", "workload": w, "axis": "latent", "batch": 100,
                                "latent": latent, "extra": ["--steps", steps], "repeats": reps, "warmup": 1})
    return main, scaling


def main():
    args = parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / ("quick.json" if args.quick else "latest.json")
    fig = Path(args.plot) if args.plot else (ROOT / "bench" / "results" / "quick-scaling.png" if args.quick
                                             else ROOT / "docs" / "performance-scaling.png")
    exe = build_ebmc()
    load0 = os.getloadavg()[0]
    if load0 > 0.5:
        log(f"WARNING: load average {load0:.2f} before the run: other processes will distort the timings "
            "(PyTorch's OpenMP threads degrade badly on busy cores)")
    started = time.time()
    main_jobs, scaling = make_jobs(args)
    gemm = [invoke([args.python, str(ROOT / "bench" / "torch_bench.py"), "gemm", "--repeats", "5"]
                   + (["--threads", str(args.threads)] if args.threads else []))]
    gflops = gemm[0]["flop"] / gemm[0]["median_s"] / 1e9
    measure(main_jobs, exe, args, rounds)
    measure(scaling, exe, args, rounds)
    rows = summary_rows(main_jobs, gflops)
    result = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "command": " ".join([Path(sys.executable).name, "bench/run.py"] + sys.argv[1:]),
        "quick": args.quick, "rounds": rounds,
        "machine": machine(), "versions": versions(args.python),
        "threads_policy": f"both pinned to {args.threads}" if args.threads else
        "ebmc: as `ebmc run` chooses for the spec (RAYON_NUM_THREADS; CANDLE_NUM_THREADS=1); "
        "PyTorch: torch.set_num_threads with the same count, and with every core where ebmc chose fewer",
        "loadavg_start": load0, "loadavg_end": os.getloadavg()[0],
        "attainable_gflops": gflops, "gemm": gemm,
        "summary": rows, "main": main_jobs, "scaling": scaling,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    log(f"wrote {out}")
    if scaling:
        plot(scaling, gflops, fig)
    print(table(rows))
    parts = breakdown_table(main_jobs)
    if parts:
        print("\n" + parts)
    compile_job = next((j for j in main_jobs if j["workload"] == "compile"), None)
    if compile_job:
        per_spec = compile_job["ebmc"][-1]["per_spec_median_s"]
        print("\ncompile time per spec (ms, last round): "
              + ", ".join(f"{Path(k).name} {v * 1e3:.2f}" for k, v in per_spec.items()))
    e_thr = sorted({r["ebmc_threads"] for r in rows})
    p_thr = sorted({r["pytorch_threads"] for r in rows if r["pytorch_threads"]})
    print(f"\nthreads: ebmc {e_thr}, PyTorch {p_thr}; attainable {gflops:.0f} GFLOP/s (2048³ sgemm); "
          f"load average {load0:.2f} → {result['loadavg_end']:.2f}; {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
