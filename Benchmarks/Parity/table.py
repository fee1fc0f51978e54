#!/usr/bin/env python3
"""The parity table: MetaBench's results.json beside pytorch_parity.py's JSON, one row per learner x setting.

    python Benchmarks/Parity/table.py results/parity parity-pytorch.json
    python Benchmarks/Parity/table.py results/parity,seeds-out parity-pytorch.json,seeds-pytorch.json

Either argument may list several files (or folders) separated by commas: their cells are pooled (more seeds of
the same rows). For each learner label and setting found on both sides: accuracy ± 95% CI half-width on each
side (episodes pooled over the seeds, 1.96*std/sqrt(n), as MetaBench's report), the difference PyTorch -
MetaBench, the combined interval and whether |difference| is within it, then each side's per-seed accuracies.

With one seed on a side, the interval is the episodes' alone, sqrt(ci1^2 + ci2^2): it says nothing about how
much another training seed would move the number. With at least two seeds on each side it is the seeds'
(Welch): t(0.975, df) * sqrt(s1^2/n1 + s2^2/n2) over the per-seed accuracies, which includes both the
seed-to-seed spread and the episodes' noise; the "interval" column says which was used. Plain Python; no
PyTorch needed. Exit status 1 when an input cannot be read, or when two files hold the same seed of a row.
"""
import argparse
import json
import math
import os
import sys


def summary(accuracies):
    """Mean and 95% CI half-width 1.96*std/sqrt(n) (sample standard deviation), in percent."""
    n = len(accuracies)
    mean = sum(accuracies) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (n - 1)) if n > 1 else 0.0
    return 100 * mean, 100 * 1.96 * std / math.sqrt(n) if n > 1 else 0.0


# Two-sided 95% quantiles of Student's t by degrees of freedom (a degree count between two keys takes the
# smaller key: the wider interval).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df):
    if df > 120:
        return 1.96
    return T975[max(k for k in T975 if k <= max(1, df))]


def seed_interval(a, b):
    """Welch's 95% interval half-width for the difference of the means of two lists of per-seed accuracies
    (each at least two long), and its degrees of freedom."""
    def variance(xs):
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    va, vb = variance(a) / len(a), variance(b) / len(b)
    if va + vb == 0:
        return 0.0, float("inf")
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t975(int(df)) * math.sqrt(va + vb), df


def merged(rows_list, side):
    """Rows of several result files: a row's seeds and episodes pooled; the same seed twice is an error."""
    out = {}
    for rows in rows_list:
        for key, row in rows.items():
            if key not in out:
                out[key] = row
                continue
            have = out[key]
            twice = {seed for seed, _ in have["seeds"]} & {seed for seed, _ in row["seeds"]}
            if twice:
                raise ValueError(f"{side} {key[0]} {key[1]}: seed {min(twice)} is in two of the files")
            for name in ("queries", "count"):
                if have[name] != row[name]:
                    raise ValueError(f"{side} {key[0]} {key[1]}: the files differ in {name} "
                                     f"({have[name]} and {row[name]})")
            have["seeds"] += row["seeds"]
            have["episodes"] += row["episodes"]
            have["training"] += row["training"]
    for row in out.values():
        row["accuracy"], row["ci95"] = summary(row["episodes"])
    return out


def metabench_rows(path):
    """{(label, setting): {...}} from a MetaBench results.json (or the folder holding it): completed cells of
    the same label and evaluation setting pooled over seeds."""
    file = os.path.join(path, "results.json") if os.path.isdir(path) else path
    with open(file) as f:
        results = json.load(f)
    if "cells" not in results:
        raise ValueError(f"{file}: not a MetaBench results.json (no cells)")
    rows, problems = {}, []
    for cell in results["cells"]:
        config = cell["config"]
        setting = config["setting"]
        key = (config["label"], f"{setting['ways']}w{setting['shots']}s")
        if cell["status"] != "completed":
            problems.append(f"MetaBench {key[0]} {key[1]} seed {config['seed']}: {cell['status']}"
                            + (f" ({cell['message']})" if cell.get("message") else ""))
            continue
        row = rows.setdefault(key, {"queries": setting["queries"], "seeds": [], "episodes": [], "training": 0.0,
                                    "hyperparameters": config["hyperparameters"],
                                    "budget": (config["training"]["iterations"], config["training"]["metaBatch"],
                                               setting["trainWays"], setting["trainShots"], setting["trainQueries"])})
        row["seeds"].append((config["seed"], 100 * sum(cell["episodeAccuracies"]) / len(cell["episodeAccuracies"])))
        row["episodes"] += cell["episodeAccuracies"]
        row["training"] += cell["trainingSeconds"]
        row["count"] = len(cell["episodeAccuracies"])
    for row in rows.values():
        row["accuracy"], row["ci95"] = summary(row["episodes"])
    return rows, problems


def pytorch_rows(path):
    with open(path) as f:
        results = json.load(f)
    if results.get("format") != "metabench-parity-pytorch-v1":
        raise ValueError(f"{path}: not a pytorch_parity.py results file")
    rows = {}
    for r in results["results"]:
        rows[(r["label"], r["setting"])] = {
            "queries": r["queries"], "accuracy": r["accuracy"], "ci95": r["ci95"], "count": r["episodes"],
            "episodes": [a for s in r["per_seed"] for a in s["episode_accuracies"]],
            "seeds": [(s["seed"], s["accuracy"]) for s in r["per_seed"]], "training": r["training_seconds"],
            "hyperparameters": r["hyperparameters"],
            "budget": (r["iterations"], r["meta_batch"], r["ways"], r["shots"], r["queries"])}
    return rows


def protocol_differences(key, m, p):
    """What differs between the two sides' protocols for one row: hyperparameters and training budget."""
    out = []
    mh, ph = m["hyperparameters"], p["hyperparameters"]
    for name in sorted(set(mh) | set(ph)):
        if name not in ph or name not in mh:
            out.append(f"{key[0]} {key[1]}: hyperparameter {name} only in {'MetaBench' if name in mh else 'PyTorch'}")
        elif mh[name] != ph[name] and not (isinstance(mh[name], (int, float)) and isinstance(ph[name], (int, float))
                                           and math.isclose(mh[name], ph[name])):
            out.append(f"{key[0]} {key[1]}: hyperparameter {name} is {mh[name]!r} in MetaBench, {ph[name]!r} in PyTorch")
    if m["budget"] != p["budget"]:
        out.append(f"{key[0]} {key[1]}: training (iterations, meta-batch, ways, shots, queries) is {m['budget']} in "
                   f"MetaBench, {p['budget']} in PyTorch")
    return out


def table(metabench, pytorch):
    lines = ["| learner | setting | MetaBench | PyTorch | difference | combined CI | interval | within | "
             "MetaBench seeds | PyTorch seeds | train s (MB / PT) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    # Learners in the order the results list them (the suite's), settings by ways.
    learners = list(dict.fromkeys([label for label, _ in metabench] + [label for label, _ in pytorch]))
    keys = sorted(set(metabench) | set(pytorch),
                  key=lambda k: (learners.index(k[0]), int(k[1].split("w")[0]), k[1]))
    for key in keys:
        m, p = metabench.get(key), pytorch.get(key)
        if not m or not p:
            notes.append(f"{key[0]} {key[1]}: only in {'MetaBench' if m else 'PyTorch'}'s results")
            continue
        if m["queries"] != p["queries"] or m["count"] != p["count"]:
            notes.append(f"{key[0]} {key[1]}: MetaBench has {m['count']} episodes of {m['queries']} queries per "
                         f"class, PyTorch {p['count']} of {p['queries']}: not the same episodes")
        notes += protocol_differences(key, m, p)
        difference = p["accuracy"] - m["accuracy"]
        if len(m["seeds"]) >= 2 and len(p["seeds"]) >= 2:
            # Every seed is scored on the same episodes, so the pooled mean is the mean of the seeds' accuracies.
            combined, df = seed_interval([a for _, a in m["seeds"]], [a for _, a in p["seeds"]])
            interval = f"seeds {len(m['seeds'])}/{len(p['seeds'])}"
        else:
            combined = math.sqrt(m["ci95"] ** 2 + p["ci95"] ** 2)
            interval = "episodes"

        def seeds(row):
            return ", ".join(f"{accuracy:.1f}" for _, accuracy in sorted(row["seeds"]))
        lines.append(f"| {key[0]} | {key[1]} | {m['accuracy']:.2f} ± {m['ci95']:.2f} | "
                     f"{p['accuracy']:.2f} ± {p['ci95']:.2f} | {difference:+.2f} | {combined:.2f} | {interval} | "
                     f"{'yes' if abs(difference) <= combined else 'no'} | {seeds(m)} | {seeds(p)} | "
                     f"{m['training']:.0f} / {p['training']:.0f} |")
    return "\n".join(lines), notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metabench", help="MetaBench's results.json, or the folder holding it (results/parity); "
                                          "several separated by commas")
    parser.add_argument("pytorch", help="the JSON pytorch_parity.py wrote; several separated by commas")
    args = parser.parse_args()
    try:
        problems = []
        metabench_files = []
        for path in args.metabench.split(","):
            rows, found = metabench_rows(path)
            metabench_files.append(rows)
            problems += found
        metabench = merged(metabench_files, "MetaBench")
        pytorch = merged([pytorch_rows(path) for path in args.pytorch.split(",")], "PyTorch")
    except (OSError, ValueError, KeyError, ZeroDivisionError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    text, notes = table(metabench, pytorch)
    print(text)
    if problems or notes:
        print("")
    for note in problems + notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
