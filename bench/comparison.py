"""The service against its floor (bench/floor): each pair is measured in interleaved
A-B-B-A rounds (floor, service, service, floor), so that drift during a round weighs on
both alike, and reported as a ratio per round with its spread over the rounds.

ratio: the service's requests/s over the floor's (the issue's measure; moves with the
machine's load). cpu ratio: the floor's CPU per request over the service's, web worker plus
PostgreSQL backends (steadier on a busy machine). 1.0 means as cheap as the floor."""

import statistics

# service scenario -> the floor scenario it is compared with
PAIRS = {"create": "floor", "list": "list-floor"}
TARGET, GOAL = 0.8, 0.9


def abba(service_step: dict, floor_step: dict, rounds: int) -> list[dict]:
    """The measurements of `rounds` A-B-B-A rounds, each step tagged with its round."""
    return [
        {**step, "round": n}
        for n in range(1, rounds + 1)
        for step in (floor_step, service_step, service_step, floor_step)
    ]


def _spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.fmean(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _cpu(rows: list[dict]) -> dict:
    web = statistics.fmean(r["web_cpu_ms"] for r in rows)
    db = statistics.fmean(r["db_cpu_ms"] for r in rows)
    return {"web_cpu_ms": round(web, 2), "db_cpu_ms": round(db, 2)}


def ratios(rows: list[dict]) -> dict:
    """Per pair measured in rounds: the ratios' mean and min-max over the rounds, and the
    mean CPU per request of each side."""
    out = {}
    for service, floor in PAIRS.items():
        paired = [r for r in rows if "round" in r and r["scenario"] in (service, floor)]
        per_round = []
        for n in sorted({r["round"] for r in paired}):
            ours = [r for r in paired if r["round"] == n and r["scenario"] == service]
            base = [r for r in paired if r["round"] == n and r["scenario"] == floor]
            if not ours or not base:
                continue
            ours_cpu, base_cpu = _cpu(ours), _cpu(base)
            per_round.append(
                {
                    "ratio": statistics.fmean(r["rps"] for r in ours)
                    / statistics.fmean(r["rps"] for r in base),
                    "cpu_ratio": (base_cpu["web_cpu_ms"] + base_cpu["db_cpu_ms"])
                    / max(0.01, ours_cpu["web_cpu_ms"] + ours_cpu["db_cpu_ms"]),
                }
            )
        if not per_round:
            continue
        ours = [r for r in paired if r["scenario"] == service]
        base = [r for r in paired if r["scenario"] == floor]
        out[service] = {
            "floor": floor,
            "rounds": len(per_round),
            "size": next((r["size"] for r in paired if r["size"] is not None), None),
            "ratio": _spread([r["ratio"] for r in per_round]),
            "cpu_ratio": _spread([r["cpu_ratio"] for r in per_round]),
            "service_rps": round(statistics.fmean(r["rps"] for r in ours), 1),
            "floor_rps": round(statistics.fmean(r["rps"] for r in base), 1),
            "service_cpu": _cpu(ours),
            "floor_cpu": _cpu(base),
            "target": TARGET,
            "goal": GOAL,
        }
    return out


def print_ratios(found: dict) -> None:
    if not found:
        return
    print(
        f"\nservice / floor, A-B-B-A rounds (target >= {TARGET:.0%}, goal {GOAL:.0%}): "
        "req/s ratio and CPU ratio, mean (min-max over rounds); CPU ms per request"
    )
    for service, r in found.items():
        ratio, cpu = r["ratio"], r["cpu_ratio"]
        size = f" ({r['size']:,} memories)" if r["size"] else ""
        print(
            f"  {service}{size}: {r['service_rps']} / {r['floor_rps']} req/s = "
            f"{ratio['mean']:.0%} ({ratio['min']:.0%}-{ratio['max']:.0%}); "
            f"CPU {cpu['mean']:.0%} ({cpu['min']:.0%}-{cpu['max']:.0%}) over {r['rounds']} "
            f"rounds; web/db {r['service_cpu']['web_cpu_ms']}/{r['service_cpu']['db_cpu_ms']}"
            f" ms, floor {r['floor_cpu']['web_cpu_ms']}/{r['floor_cpu']['db_cpu_ms']} ms"
        )
