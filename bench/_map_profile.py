"""Run one `lsmap map` (``map_region``, what the CLI calls) and profile it from Ray's own timeline.

Used by map_efficiency.py in a fresh process, so that Ray start-up is paid as a user pays it.
Writes a JSON document: the phases' wall seconds (interpreter start, imports, Ray start, start-up to
the first batch, the actors' batches, finalize, shutdown), from the process start time and Ray's task events
(``ray.timeline()``), which record every actor call and task with its start and duration. Dumping
the timeline is excluded from the wall time.
"""

from __future__ import annotations

import argparse
import json
import time

import psutil

CREATED = psutil.Process().create_time()


def phases(events: list[dict], since: float) -> dict[str, float]:
    """The span of the actors' batches (read + infer + write; Ray Data fuses the read into the
    actor) in a chrome-trace ``events`` list, in seconds after ``since`` (epoch seconds)."""
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for event in events:
        if event.get("ph") == "X":
            start = event["ts"] / 1e6 - since
            span = (start, start + event["dur"] / 1e6, event.get("tid"))
            spans.setdefault(event["name"], []).append(span)
    batches = spans["submit"]  # an actor's map_batches call: read + infer + write of a unit
    return {
        "infer_first_start": min(s for s, _, _ in batches),
        "infer_last_end": max(e for _, e, _ in batches),
        "infer_busy_s": sum(e - s for s, e, _ in batches),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--model", "--rgb", "--dem", "--out", "--report"):
        parser.add_argument(name, required=True)
    parser.add_argument("--chunk", type=int, required=True)
    parser.add_argument("--blend", required=True)
    parser.add_argument("--overlap", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--precision", required=True)
    args = parser.parse_args()

    import ray

    from pipelines.mapping.run import map_region
    from pipelines.ray_runtime import init_ray

    imported = time.time()
    init_ray()
    ray_up = time.time()
    manifest = map_region(
        args.model,
        {"image": args.rgb, "dem": args.dem},
        args.out,
        workers=args.workers,
        batch_size=args.batch_size,
        precision=args.precision,
        overlap=args.overlap,
        blend=args.blend,
        chunk=args.chunk,
        quicklook=False,
        progress=False,
    )
    mapped = time.time()
    events = ray.timeline()
    dumped = time.time()
    ray.shutdown()
    report = {
        "created": CREATED,
        "dump_s": dumped - mapped,
        "imports_s": imported - CREATED,
        "ray_init_s": ray_up - imported,
        "map_s": mapped - ray_up,
        "shutdown_s": time.time() - dumped,  # the rest of exit is timed by the caller
        "timings_s": manifest["timings_s"],
        **phases(events, ray_up),
    }
    with open(args.report, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
