"""The rank test's level over the key's draw, from an evaluation grid's results.jsonl.

    python docs/benchmarks/rank-test-level.py OUT/results.jsonl

For every null claim of a UBW key with fresh triggers: its p_rank (the key's trigger's
rank among the fresh ones, on a model that never saw the release). If the key's trigger
is one more draw from the fresh triggers' distribution, P(p_rank <= a) <= a for every a,
over the key's draw. The claims of one key share its trigger and those on one model
share the model, so the independent draws are the keys on each model: prints JSON with
the share of all null claims at or below each level, the same per null model (over the
keys), each key's median p_rank, the owners' p_rank, and what Prop. 1 alone would have
accepted under the same keys.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5)


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    ranked = [r for r in rows if "p_rank" in (r.get("details") or {})]
    nulls = [r for r in ranked if r["kind"] == "null"]
    by_key: dict[tuple[str, int], list[float]] = defaultdict(list)
    by_model: dict[str, list[float]] = defaultdict(list)
    for r in nulls:
        by_key[r["scheme_label"], r["seed"]].append(r["details"]["p_rank"])
        by_model[r["null"]].append(r["details"]["p_rank"])
    owners = sorted(r["details"]["p_rank"] for r in ranked if r["kind"] == "owner")
    print(json.dumps({
        "null_claims": len(nulls), "keys": len(by_key),
        "accepted_at_alpha": sum(r["accepted"] for r in nulls),
        "share_of_null_claims_at_or_below": {
            str(a): sum(r["details"]["p_rank"] <= a for r in nulls) / len(nulls) for a in LEVELS},
        "share_of_keys_at_or_below_per_null_model": {
            model: {str(a): sum(p <= a for p in ps) / len(ps) for a in LEVELS}
            for model, ps in sorted(by_model.items())},
        "prop1_alone_at_0.01": {"null_claims": sum(r["details"]["p_prop1"] < 0.01 for r in nulls),
                                "owners": sum(r["details"]["p_prop1"] < 0.01 for r in ranked
                                              if r["kind"] == "owner")},
        "owners_accepted": sum(r["accepted"] for r in ranked if r["kind"] == "owner"),
        "key_median_p_rank": sorted(sorted(ps)[len(ps) // 2] for ps in by_key.values()),
        "owner_p_rank": owners,
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
