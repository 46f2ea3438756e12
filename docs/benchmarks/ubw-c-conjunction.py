"""UBW-C: Prop. 1 alone, the rank test alone, and both together, on every measured case.

    python docs/benchmarks/ubw-c-conjunction.py > conjunction.json

A UBW-C claim is decided by Prop. 1 (Li et al. 2022): a paired one-sided t-test with
margin τ = 0.25 on m = 100 (P_b, P_p) pairs. docs/proposals/ubw-c-key-specific-test.md
adds a rank test: the key's trigger ranked among K fresh triggers of its kind,
p_rank = (1 + #{fresh costing at least the key's}) / (K + 1). Accepting only when BOTH
accept can never accept more than Prop. 1 alone, and for an honestly drawn key the rank
test's false-accept rate is ≤ α whatever the model; what the conjunction costs is power
on the owners' own claims. This script counts that cost on the data already measured.

It reads the raw files in this folder (stdlib only) and collects every (model, trigger)
case with BOTH a Prop. 1 p-value and a rank-test p_rank for the same trigger on the same
model, Fashion-MNIST only (CPU runs and the H200's). Where they come from:

* ``bench ubw`` outputs with ``--control`` (``ubw-c-*.json``, ``ubw-fashion-60000-*``): each
  suspect under its own key (``ubw_c_runs``, or ``ubw_c`` for a one-suspect run:
  ``p_value``, ``control.p_rank``, ``control.matched_white.p_rank``), under the run's
  other keys (``other_keys_p_values`` with ``other_keys_control_p_rank``, both in key
  order without the suspect's own), and the null models (``independent_models``:
  ``ubw_c_p_values`` with ``ubw_c_control_p_rank``, model-major; null 0 is the run's clean
  model, seed ``--seed``, null i is seed ``--seed`` + 1000 + i, as bench/ubw.py trains them).
  Both numbers of such a case come from the same file.
* control-only files, each joined to the Prop. 1 p-values of the run whose cached models
  it re-analysed: ``ubw-c-warp-round-control-…`` (runs ``ubw-warp-p-decoys-c-round-…-keys2``
  and ``ubw-c-warp-specific-round-fashion-…-keys2``), ``ubw-c-warp-specific-decoys02-control-…``
  (run ``ubw-c-warp-specific-round-decoys02-…-keys3``), ``ubw-c-warp-specific-source-decoys-
  posthoc-…`` (its own ``claims_under_six_keys``, else the six-key run),
  ``ubw-c-reference-items-…-intel`` (owners: the Intel runs; its null models' Prop. 1 is
  ``prop1_fresh.key_p``, on the first m evaluation images rather than the key's committed
  items, marked ``prop1_note``), ``ubw-fashion-16000-nulls-…`` and
  ``ubw-c-fashion-16000-matched-white-…`` (the 16,000-image seed-0 key), and the CLI run at
  4,000 images (``ubw-c-cli-fashion-4000-40ep-control-…``; the claims' p-values are in its
  ``…-cpu.log``).

A case is identified by its model (machine, data size × epochs, and the release's bench
options, key seed and suspect seed, or the null model's seed) and its trigger (key seed,
trigger kind, and the options that change the trigger or items). A case found in several
files is counted once if its numbers agree (``also_in`` names the other files); cases
whose identity matches but whose numbers differ are kept apart and listed in
``conflicts`` (the same command re-run after a code change, or on another machine, is
another model). Labels: ``owner`` (the model was trained on that key's release), ``other``
(trained on another key's release), ``null`` (trained on clean data only: the run's clean
model, which is also the crafting's surrogate, or an independently seeded one). Cases
with a p_rank but no Prop. 1 p-value in any raw file are in ``unpaired``; ``skipped``
names what was left out and why.

Acceptance: Prop. 1 when p ≤ α, the rank test when p_rank ≤ α (α = 0.01; the rank test
also at 0.05). The uniform fresh reference (``p_rank``) is primary; ``matched_white``
(fresh squares with the key's white count) is a second column where measured: owners'
claims of square-key runs from 2026-12-04 on, the 16,000-image null models and the CLI's
models (warping fields have no white pixels; bench does not record it for other owners'
claims or null models).
"""
from __future__ import annotations

import glob
import itertools
import json
import re
import shlex
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALPHA, ALPHA_LOOSE = 0.01, 0.05
EPS = 1e-12                      # p_rank = 2/200 must count as ≤ 0.01


def load(name: str) -> dict:
    return json.loads((HERE / name).read_text())


def machine(doc: dict) -> str:
    """Models trained on different machines differ (docs/benchmarks.md: "the same command
    on another CPU is another release"), so the machine is part of a model's identity."""
    r = doc.get("results", {})
    if isinstance(r, dict) and r.get("gpu"):
        return "h200"
    dev = doc.get("device")
    cpu = dev.get("cpu", "") if isinstance(dev, dict) else str(dev)
    return "amd" if "AMD" in cpu else "intel" if "Intel" in cpu else "?"


def bench_args(command: str) -> dict:
    """The options of a ``python -m bench ubw`` command line that identify its models."""
    argv = shlex.split(command)
    out = {"seed": 0, "first_key": 0, "keys": 1, "surrogate": "own", "ubw_c": {}}
    for flag, value in itertools.pairwise(argv):
        if flag in ("--seed", "--first-key", "--keys"):
            out[flag[2:].replace("-", "_")] = int(value)
        elif flag == "--surrogate":
            out["surrogate"] = value
        elif flag == "--ubw-c":
            k, _, v = value.partition("=")
            out["ubw_c"][k] = v
    return out


def trigger_id(key_seed: int, opts: dict) -> str:
    """The key seed draws the trigger and the items; these options change what it draws."""
    extra = [f"{k}={opts[k]}" for k in ("trigger", "side", "warp_grid", "warp_strength",
                                          "source") if k in opts]
    return "/".join([f"key{key_seed}", *extra])


class Run:
    """One ``bench ubw`` output: the identities of its models and triggers."""

    def __init__(self, name: str):
        self.name, self.doc = name, load(name)
        self.r = self.doc["results"]
        self.a = bench_args(self.doc["command"])
        self.opts = self.a["ubw_c"]
        self.where = f"{machine(self.doc)}/fashion{self.r['train_images']}x{self.r['epochs']}ep"
        self.key_seeds = [self.a["seed"] + 1 + 1000 * (self.a["first_key"] + k)
                          for k in range(self.a["keys"])]

    def key(self, key_seed: int) -> str:
        return trigger_id(key_seed, self.opts)

    def suspect(self, key_seed: int, suspect_seed: int = 100) -> tuple[str, str]:
        """(model id, the trigger id of the release it was trained on)"""
        recipe = ",".join(f"{k}={v}" for k, v in sorted(self.opts.items()))
        model = (f"{self.where}/release(surrogate={self.a['surrogate']};{recipe};"
                 f"key{key_seed})/suspect{suspect_seed}")
        return model, self.key(key_seed)

    def null(self, i: int = 0) -> tuple[str, None]:
        seed = self.a["seed"] + (1000 + i if i else 0)
        return f"{self.where}/clean-seed{seed}", None

    def rows(self) -> list[dict]:
        if self.r.get("ubw_c_runs"):
            return self.r["ubw_c_runs"]
        return [dict(self.r["ubw_c"], key_seed=self.key_seeds[0],
                     suspect_seed=self.a["seed"] + 100)]


PROP1: dict[str, dict[tuple[str, str], float]] = {}  # file → (model id, trigger id) → p
NOTES: dict[tuple[str, str, str], str] = {}          # (file, model id, trigger id) → note
RANKS: list[dict] = []                               # every p_rank found, with its Prop. 1 files


def prop1(file: str, model: tuple, key: str, p: float, note: str | None = None) -> None:
    PROP1.setdefault(file, {})[(model[0], key)] = p
    if note:
        NOTES[(file, model[0], key)] = note


def rank(file: str, model: tuple, key: str, p_rank: float, matched: float | None = None,
         prop1_from: tuple[str, ...] | None = None) -> None:
    RANKS.append({"file": file, "model": model[0], "release": model[1], "key": key,
                  "p_rank": p_rank, "matched_white": matched,
                  "prop1_from": prop1_from or (file,)})


# ---- bench ubw outputs (with or without --control) ---------------------------------------
RUNS: dict[str, Run] = {}
for path in sorted(glob.glob(str(HERE / "ubw-c-*.json")) + glob.glob(str(HERE / "ubw-fashion-*.json"))
                   + glob.glob(str(HERE / "ubw-warp-*.json"))):
    doc = json.loads(Path(path).read_text())
    res = doc.get("results")
    if doc.get("bench") != "ubw" or not isinstance(res, dict) or res.get("data") != "fashion-mnist" \
            or "ubw_c" not in res:
        continue                             # digits, UBW-P only, profiles, custom formats
    run = RUNS[Path(path).name] = Run(Path(path).name)
    for row in run.rows():
        ks = row["key_seed"]
        model = run.suspect(ks, row["suspect_seed"])
        prop1(run.name, model, run.key(ks), row["p_value"])
        if "control" in row:
            rank(run.name, model, run.key(ks), row["control"]["p_rank"],
                 (row["control"].get("matched_white") or {}).get("p_rank"))
        others = [k for k in run.key_seeds if k != ks]
        ranks = row.get("other_keys_control_p_rank")
        for j, p in enumerate(row.get("other_keys_p_values", [])):
            prop1(run.name, model, run.key(others[j]), p)
            if ranks:
                rank(run.name, model, run.key(others[j]), ranks[j])
    nulls = res.get("independent_models") or {}
    ranks = nulls.get("ubw_c_control_p_rank")
    for idx, p in enumerate(nulls.get("ubw_c_p_values", [])):
        i, k = divmod(idx, run.a["keys"])
        prop1(run.name, run.null(i), run.key(run.key_seeds[k]), p)
        if ranks:
            rank(run.name, run.null(i), run.key(run.key_seeds[k]), ranks[idx])

# ---- control-only files, joined to the runs whose cached models they re-analysed ----------
f = "ubw-c-warp-round-control-fashion-4000-40ep-2026-12-05-amd.json"
for section, run_name in (("target=paper (ubw-warp-p-decoys-c-round-*.json)",
                           "ubw-warp-p-decoys-c-round-fashion-4000-40ep-keys2-2026-12-05-amd.json"),
                          ("target=specific (ubw-c-warp-specific-round-*.json)",
                           "ubw-c-warp-specific-round-fashion-4000-40ep-keys2-2026-12-05-amd.json")):
    run = RUNS[run_name]
    for who, per_key in load(f)["results"][section].items():
        model = run.null(0) if who == "clean" else run.suspect(int(who.removeprefix("suspect_key")))
        for key, c in per_key.items():
            rank(f, model, run.key(int(key.removeprefix("key"))), c["p_rank"], prop1_from=(run.name,))

f = "ubw-c-warp-specific-decoys02-control-fashion-4000-40ep-2026-12-05-amd.json"
run = RUNS["ubw-c-warp-specific-round-decoys02-fashion-4000-40ep-keys3-2026-12-05-amd.json"]
for who, per_key in load(f)["results"].items():
    model = run.null(0) if who == "clean" else run.suspect(int(who.removeprefix("suspect_key")))
    for key, c in per_key.items():
        rank(f, model, run.key(int(key.removeprefix("key"))), c["p_rank"], prop1_from=(run.name,))

f = "ubw-c-warp-specific-source-decoys-posthoc-2026-12-06-amd.json"
SIX = "ubw-c-warp-specific-decoys02-keys6-fashion-4000-40ep-2026-12-06-amd.json"
POSTHOC = {   # the file's model digests → the bench run that trained them (its "models" says which)
    "512c1d8f": "ubw-c-warp-specific-source-decoys0.005-key1-fashion-4000-40ep-2026-12-06-amd.json",
    "67d3bad4": "ubw-c-warp-specific-source-decoys0.005-key2001-fashion-4000-40ep-2026-12-06-amd.json",
    "0ead858c": "ubw-c-warp-specific-source-decoys0.005-key1001-fashion-4000-40ep-2026-12-06-amd.json",
    "fda55f38": "ubw-c-warp-specific-source-decoys0.005-key5001-fashion-4000-40ep-2026-12-06-amd.json",
    "a5515fc8": "ubw-c-warp-specific-source-decoys0.01-key1-fashion-4000-40ep-2026-12-06-amd.json",
    "445cdbed": "ubw-c-warp-specific-source-decoys0.01-key2001-fashion-4000-40ep-2026-12-06-amd.json",
    "8749cd33": "ubw-c-warp-specific-source-decoys0.0075-key2001-fashion-4000-40ep-2026-12-06-amd.json",
    "4de88b7f": SIX, "cbac5463": SIX, "c6730170": SIX, "367c8af0": SIX, "3b30fccb": SIX,
}
posthoc = load(f)


def posthoc_model(digest: str) -> tuple[Run, tuple]:
    run, what = RUNS[POSTHOC[digest]], posthoc["models"][digest]
    if what.startswith("clean model, seed 0"):
        return run, run.null(0)
    return run, run.suspect(int(re.match(r"key (\d+)", what).group(1)))


for digest, claims in posthoc["claims_under_six_keys"].items():
    run, model = posthoc_model(digest)
    for key, c in claims.items():
        prop1(f, model, run.key(int(key)), c["p_value"])
for name, c in posthoc["control"].items():
    digest, key = re.fullmatch(r"(\w+) under key (\d+)", name).groups()
    run, model = posthoc_model(digest)
    rank(f, model, run.key(int(key)), c["p_rank"], prop1_from=(f, run.name))

f = "ubw-c-reference-items-fashion-4000-40ep-2026-12-06-intel.json"
INTEL = {     # its entries → the Intel bench runs of those suspects (--control 199, --nulls 0)
    "key1-s160-r1": "ubw-c-warp-specific-source-decoys0.005-steps160-retrains1-key1-fashion-4000-40ep-2026-12-06-intel.json",
    "key1-s320-r1": "ubw-c-warp-specific-source-decoys0.005-steps320-retrains1-key1-fashion-4000-40ep-2026-12-06-intel.json",
    "key1-s240-r2": "ubw-c-warp-specific-source-decoys0.005-steps240-retrains2-key1-fashion-4000-40ep-2026-12-06-intel.json",
    "key1001-s320-r1": "ubw-c-warp-specific-source-decoys0.005-steps320-retrains1-key1001-fashion-4000-40ep-2026-12-06-intel.json",
    "key2001-s320-r1": "ubw-c-warp-specific-source-decoys0.005-steps320-retrains1-key2001-fashion-4000-40ep-2026-12-06-intel.json",
    "key5001-s320-r1": "ubw-c-warp-specific-source-decoys0.005-steps320-retrains1-key5001-fashion-4000-40ep-2026-12-06-intel.json",
}
for name, c in load(f).items():
    if name in INTEL:                        # the owners: the runs' own suspects
        run = RUNS[INTEL[name]]
        rank(f, run.suspect(run.key_seeds[0]), run.key(run.key_seeds[0]), c["p_rank"],
             prop1_from=(run.name,))
        continue
    digest, entry = re.fullmatch(r"null (\w+) under (\S+)", name).groups()
    run = RUNS[INTEL[entry]]                 # seeds 1001-1003; which digest is which: not recorded
    model, key = (f"{run.where}/independent-{digest}", None), run.key(run.key_seeds[0])
    prop1(f, model, key, c["prop1_fresh"]["key_p"],
          note="prop1_fresh.key_p: first m evaluation images, not the key's committed items")
    rank(f, model, key, c["p_rank"])

# The 16,000-image null models: the Intel machine's --models cache, the seed-0 run's UBW-C key.
run = RUNS["ubw-c-fashion-16000-20ep-seed0-control-2026-12-04-cpu.json"]
key = run.key(run.key_seeds[0])
f = "ubw-fashion-16000-nulls-2026-12-04-cpu.json"
for m in load(f)["models"]:
    model = (f"{run.where}/clean-seed{m['seed']}", None)
    prop1(f, model, key, m["ubw-c"]["p_value"])
    rank(f, model, key, m["ubw-c"]["control"]["p_rank"],
         m["ubw-c"]["control"]["matched_white"]["p_rank"])
f = "ubw-c-fashion-16000-matched-white-2026-12-04-cpu.json"
for name, c in load(f)["models"].items():
    model = (f"{run.where}/clean-seed{int(name.rsplit(' ', 1)[1])}", None)
    rank(f, model, key, c["p_rank"], c["matched_white"]["p_rank"],
         prop1_from=("ubw-fashion-16000-nulls-2026-12-04-cpu.json", run.name))

# The CLI at 4,000 images (a fresh os.urandom key): the claims' p-values are in its log.
f, log = ("ubw-c-cli-fashion-4000-40ep-control-2026-12-05-cpu.json",
          "ubw-c-cli-fashion-4000-40ep-2026-12-05-cpu.log")
cli_key = "cli-key-820e6227"                 # the key id its log prints
verdicts = dict(re.findall(r"wrote (\w+)\.bundle\.json: \w+ at p = (\S+) ", (HERE / log).read_text()))
for path, c in load(f)["results"]["models"].items():
    who = Path(path).stem                    # suspect, independent, clean (the surrogate)
    model = (f"intel/cli-fashion4000x40ep/{who}", cli_key if who == "suspect" else None)
    if who in verdicts:
        prop1(log, model, cli_key, float(verdicts[who]))
    rank(f, model, cli_key, c["p_rank"], (c.get("matched_white") or {}).get("p_rank"),
         prop1_from=(log,))

# ---- join, deduplicate, label, count -----------------------------------------------------


def label(release: str | None, key: str) -> str | None:
    """owner / other / null; None where the keys share a seed but not their options (the
    same key re-made with other options: neither the owner's claim nor another owner's)."""
    if release is None:
        return "null"
    if key == release:
        return "owner"
    return None if key.split("/")[0] == release.split("/")[0] else "other"


found, unpaired = {}, []
for r in RANKS:
    src = next((s for s in r["prop1_from"] if (r["model"], r["key"]) in PROP1.get(s, {})), None)
    if src is None:
        unpaired.append({k: r[k] for k in ("file", "model", "key", "p_rank")})
        continue
    case = {"label": label(r["release"], r["key"]), "file": r["file"], "prop1_file": src,
            "suspect": r["model"], "key": r["key"], "prop1_p": PROP1[src][(r["model"], r["key"])],
            "p_rank": r["p_rank"], "matched_white": r["matched_white"]}
    if (src, r["model"], r["key"]) in NOTES:
        case["prop1_note"] = NOTES[(src, r["model"], r["key"])]
    found.setdefault((r["model"], r["key"]), []).append(case)

cases, conflicts, uncertain = [], [], []
for (model, key), seen in found.items():
    variants: list[dict] = []                # one per distinct (p, p_rank)
    for c in seen:
        same = next((v for v in variants if abs(v["prop1_p"] - c["prop1_p"]) <= 1e-9 * max(1, c["prop1_p"])
                     and abs(v["p_rank"] - c["p_rank"]) < EPS), None)
        if same is None:
            variants.append({**c, "also_in": []})
        else:
            if same["matched_white"] is None and c["matched_white"] is not None:
                same["matched_white"] = c["matched_white"]
            same["also_in"] = sorted({*same["also_in"], c["file"], c["prop1_file"]}
                                     - {same["file"], same["prop1_file"]})
    if len(variants) > 1:
        conflicts.append({"suspect": model, "key": key,
                          "variants": [{k: v[k] for k in ("file", "prop1_p", "p_rank")}
                                       for v in variants]})
    for v in variants:
        (cases if v["label"] else uncertain).append(v)

ORDER = ("owner", "other", "null")
cases.sort(key=lambda c: (ORDER.index(c["label"]), c["file"], c["suspect"], c["key"]))


def ok(p: float | None, alpha: float) -> bool:
    return p is not None and p <= alpha + EPS


def counts(group: list[dict]) -> dict:
    mw = [c for c in group if c["matched_white"] is not None]
    return {
        "n": len(group),
        "prop1_accepts": sum(ok(c["prop1_p"], ALPHA) for c in group),
        "rank_accepts": sum(ok(c["p_rank"], ALPHA) for c in group),
        "both_accept": sum(ok(c["prop1_p"], ALPHA) and ok(c["p_rank"], ALPHA) for c in group),
        "rank_at_0.05": {
            "rank_accepts": sum(ok(c["p_rank"], ALPHA_LOOSE) for c in group),
            "both_accept": sum(ok(c["prop1_p"], ALPHA) and ok(c["p_rank"], ALPHA_LOOSE)
                               for c in group)},
        "matched_white": {
            "n": len(mw),
            "prop1_accepts": sum(ok(c["prop1_p"], ALPHA) for c in mw),
            "rank_accepts": sum(ok(c["matched_white"], ALPHA) for c in mw),
            "both_accept": sum(ok(c["prop1_p"], ALPHA) and ok(c["matched_white"], ALPHA)
                               for c in mw)},
    }


def trigger(case: dict) -> str:
    """"field" for a warping key (its id names trigger=warp), else "square": claimkit's
    fresh triggers (``-p fresh=K``) are built for squares only."""
    return "field" if "trigger=warp" in case["key"] else "square"


print(json.dumps({
    "alpha": ALPHA,
    "rule": "Prop. 1 accepts when p <= alpha, the rank test when p_rank <= alpha; both: both",
    "summary": {lab: counts([c for c in cases if c["label"] == lab]) for lab in ORDER},
    "by_trigger": {kind: {lab: counts([c for c in cases if c["label"] == lab
                                       and trigger(c) == kind]) for lab in ORDER}
                   for kind in ("square", "field")},
    "cases": cases,
    "unpaired": unpaired,
    "uncertain_label": uncertain,
    "conflicts": conflicts,
    "skipped": [
        {"what": "the CLI at 8,000 images (ubw-c-cli-8000-rank999-2026-12-03-cpu.json): suspect "
                 "p_rank 0.037, independent model 0.169, clean model 0.599",
         "why": "no raw file holds their Prop. 1 p-values (docs/benchmarks.md gives the "
                "suspect's, 0.798, and the independent model's, 1.0, in prose only)"},
        {"what": "ubw-c-cli-8000-control-2026-12-03-cpu.json",
         "why": "8 fresh patterns and a per-image paired test: no rank test"},
        {"what": "ubw-c-default-digits-…, ubw-c-digits-default-…", "why": "not Fashion-MNIST"},
    ],
}, indent=1))
