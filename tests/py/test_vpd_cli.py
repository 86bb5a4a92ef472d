"""test_vpd_cli.py — `pdc MODEL -o DIR --method vpd` and the adversarial parts of
`pdc eval` from the outside: the VPD objective's config keys (read, written back,
errors naming the key), the persistent adversary's sources surviving a
checkpoint/--resume bit-identically, `--method vpd` defaults, and the fresh-PGD
table of eval.json.

Run by CTest as: .venv/bin/python tests/py/test_vpd_cli.py --pdc PATH
"""
import json
import os

from common import Results, TempDir, parse_args, run_pdc
from test_decompose_cli import MODEL, check_resume, decompose, read_safetensors

CONFIG = """\
method: vpd
seed: 5
steps: 60
batch_size: 64
lr_schedule: {start_val: 2.0e-3, fn_type: cosine, warmup_pct: 0.0, final_val_frac: 0.1}
grad_clip_norm: 0.5
ci_fn_type: "global_shared_mlp"
ci_fn_hidden_dims: [16]
sigmoid_type: "leaky_hard"
module_info:
  - module_pattern: "W"
    C: 6
loss_metric_configs:
  - classname: "ImportanceMinimalityLoss"
    coeff: 3e-3
    pnorm: 2.0
    beta: 0.5
    p_anneal_start_frac: 0.0
    p_anneal_final_p: 0.7
    p_anneal_end_frac: 1.0
  - {classname: "StochasticReconSubsetLoss", coeff: 0.5}
  - classname: "PersistentPGDReconLoss"
    coeff: 0.5
    n_warmup_steps: 2
    scope: "per_batch_per_position"
    optimizer:
      type: "adam"
      lr_schedule: {start_val: 0.01, fn_type: constant, warmup_pct: 0.025, final_val_frac: 1.0}
      beta1: 0.5
      beta2: 0.99
      eps: 1.0e-8
  - classname: "PGDReconLoss"
    coeff: 0.25
    init: "random"
    step_size: 0.1
    n_steps: 2
    mask_scope: "shared_across_batch"
  - {classname: "FaithfulnessLoss", coeff: 1.0e3}
faithfulness_warmup_steps: 20
faithfulness_warmup_lr: 1.0e-3
faithfulness_warmup_weight_decay: 0.0
checkpoint_every: 25
log_freq: 10
task_config:
  feature_probability: 0.05
  data_generation_type: "at_least_zero_active"
"""


def check_run(args, res, tmp):
    out, p = decompose(args, res, tmp, "full")
    if not res.check("vpd run exits 0", p.returncode == 0, p.stderr):
        return None
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    last = [x for x in lines if x["phase"] == "vpd"][-1]
    for k in ("loss/PersistentPGDReconLoss", "loss/PGDReconLoss", "loss/StochasticReconSubsetLoss",
              "loss/ImportanceMinimalityLoss", "grad_norm/components"):
        res.check(f"metrics: has {k}", k in last, str(sorted(last)))
    cfg = json.load(open(os.path.join(out, "decomposition.json")))["config"]
    losses = {x["classname"]: x for x in cfg["loss_metric_configs"]}
    pp = losses.get("PersistentPGDReconLoss", {})
    res.check("resolved config: persistent adversary",
              cfg["method"] == "vpd" and pp.get("n_warmup_steps") == 2
              and pp.get("scope") == "per_batch_per_position"
              and pp.get("optimizer", {}).get("beta1") == 0.5
              and pp["optimizer"]["lr_schedule"]["warmup_pct"] == 0.025, json.dumps(pp))
    pg = losses.get("PGDReconLoss", {})
    res.check("resolved config: fresh adversary",
              pg.get("n_steps") == 2 and pg.get("mask_scope") == "shared_across_batch"
              and pg.get("step_size") == 0.1, json.dumps(pg))
    return out


def check_checkpoint_holds_sources(args, res, tmp):
    out, p = decompose(args, res, tmp, "stopped", ["--run-steps", "47"])
    if not res.check("--run-steps exits 0", p.returncode == 0, p.stderr):
        return
    ck = read_safetensors(os.path.join(out, "checkpoint.safetensors"))
    src = ck.get("ppgd.W.source")
    res.check("checkpoint holds the persistent sources [batch, C+1]",
              src is not None and src.shape == (64, 7) and src.min() >= 0 and src.max() <= 1,
              str(sorted(ck)))
    res.check("checkpoint holds the sources' Adam moments",
              "ppgd.W.m" in ck and "ppgd.W.v" in ck and ck["ppgd.W.v"].min() >= 0, str(sorted(ck)))


def check_eval(args, res, full):
    p = run_pdc(args.pdc, ["eval", full])
    if not res.check("eval of a vpd run exits 0", p.returncode == 0, p.stderr):
        return
    adv = json.load(open(os.path.join(full, "eval.json"))).get("adversarial", {})
    steps = adv.get("steps", {})
    res.check("eval.json: PGD at 0, 20, 40, 80, 160, 320 steps",
              sorted(steps, key=int) == ["0", "20", "40", "80", "160", "320"], json.dumps(adv))
    if steps:
        res.check("eval: 20 sign steps beat the random source", steps["20"] > steps["0"],
                  json.dumps(steps))
    res.check("eval: adversarial table printed", "fresh PGD" in p.stdout and "320 steps" in
              p.stdout, p.stdout)
    ev = json.load(open(os.path.join(full, "eval.json")))
    for name, s in ev["sites"].items():
        dens = s.get("firing_density", [])
        res.check(f"eval {name}: L0 = sum of the firing densities", len(dens) == 6
                  and abs(s["L0"] - sum(dens)) < 1e-4 * max(1.0, s["L0"]), json.dumps(s))
        res.check(f"eval {name}: alive = components that fired", s["alive"] ==
                  sum(1 for x in dens if x > 0), json.dumps(s))
    res.check("eval: L0 and alive totals", abs(ev["L0_total"] - sum(
        s["L0"] for s in ev["sites"].values())) < 1e-9 and ev["alive_total"] == sum(
        s["alive"] for s in ev["sites"].values()), json.dumps(ev["sites"]))


def check_defaults(args, res, tmp):
    out = os.path.join(tmp, "defaults")
    p = run_pdc(args.pdc, [MODEL, "-o", out, "--method", "vpd", "--steps", "30", "--batch", "64",
                           "--warmup-steps", "5"])
    if not res.check("--method vpd with its defaults exits 0", p.returncode == 0, p.stderr):
        return
    cfg = json.load(open(os.path.join(out, "decomposition.json")))["config"]
    names = [x["classname"] for x in cfg["loss_metric_configs"]]
    res.check("vpd defaults: the VPD objective",
              names == ["ImportanceMinimalityLoss", "StochasticReconSubsetLoss",
                        "PersistentPGDReconLoss", "FaithfulnessLoss"], str(names))
    imp = cfg["loss_metric_configs"][0]
    res.check("vpd defaults: p 2 -> 0.4, beta 0.5, clip 0.01, lr 5e-5 cosine to 0.1",
              imp["pnorm"] == 2.0 and imp["p_anneal_final_p"] == 0.4 and imp["beta"] == 0.5
              and cfg["grad_clip_norm"] == 0.01 and cfg["lr_schedule"]["start_val"] == 5e-5
              and cfg["lr_schedule"]["final_val_frac"] == 0.1, json.dumps(cfg))
    res.check("vpd defaults: the global CI transformer",
              cfg["ci_fn_type"] == "global_shared_transformer"
              and cfg["simple_transformer_ci_cfg"]["d_model"] == 128, json.dumps(cfg))


def check_errors(args, res, tmp):
    cases = [
        ("optimizer key", CONFIG.replace("      beta1: 0.5", "      betta1: 0.5"), "betta1"),
        ("warmup ascents bound", CONFIG.replace("n_warmup_steps: 2", "n_warmup_steps: 99"),
         "n_warmup_steps"),
        ("coeff 0", CONFIG.replace("    coeff: 0.5\n    n_warmup", "    coeff: 0\n    n_warmup"),
         "coeff > 0"),
        ("scope name", CONFIG.replace('scope: "per_batch_per_position"', 'scope: "everywhere"'),
         "scope"),
        ("method mismatch", CONFIG, "method"),
    ]
    for what, text, needle in cases:
        path = os.path.join(tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write(text)
        extra = ["--method", "spd"] if what == "method mismatch" else []
        p = run_pdc(args.pdc, [MODEL, "-o", os.path.join(tmp, "bad"), "--config", path, *extra])
        res.check(f"config error named: {what}", p.returncode != 0 and needle in p.stderr,
                  p.stderr)
        res.check(f"config error leaves no DIR: {what}", not os.path.exists(
            os.path.join(tmp, "bad", "decomposition.json")), "written")


def main():
    args = parse_args(__doc__)
    res = Results(args.only)
    with TempDir(args.keep) as tmp:
        with open(os.path.join(tmp, "cfg.yaml"), "w") as f:
            f.write(CONFIG)
        full = check_run(args, res, tmp)
        if full:
            check_checkpoint_holds_sources(args, res, tmp)
            check_resume(args, res, tmp, full)
            check_eval(args, res, full)
        check_defaults(args, res, tmp)
        check_errors(args, res, tmp)
    res.finish()


if __name__ == "__main__":
    main()
