"""``modstream``: broker, worker, demo, classify, eval, bench, train, export.

Start-up failures (bad settings, a missing or corrupt model) print one line
naming the problem to stderr and exit with status 2; nothing else runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from classifiers.card import ModelLoadError
from stream.errors import ConfigError

EXIT_STARTUP = 2


def _fail(message: str) -> int:
    # Always one line: YAML and pydantic errors come with their own line breaks.
    line = " | ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"modstream: error: {line}", file=sys.stderr)
    return EXIT_STARTUP


def _load_classifier(model: Any, cache_size: int | None = None) -> Any:
    from classifiers.api import NullClassifier, load_classifier
    from classifiers.card import load_card

    if model.classifier == "null":
        return NullClassifier(load_card(model.model_dir).categories)

    return load_classifier(
        model.model_dir,
        providers=model.providers,
        variant=model.model_variant,
        intra_op_threads=model.intra_op_threads,
        streams=model.inference_streams,
        cache_size=model.cache_size if cache_size is None else cache_size,
        trt_cache_dir=model.trt_cache_dir,
    )


def cmd_broker(args: argparse.Namespace) -> int:
    import os

    from stream.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=args.port, host=args.host)
    print(
        f"modstream: Tansu broker on {broker.bootstrap_servers} (in memory; Ctrl-C stops it)",
        flush=True,
    )
    os.execv(broker.command()[0], broker.command())


def cmd_worker(args: argparse.Namespace) -> int:
    from stream.app import build_app, run_worker
    from stream.logs import configure_logging
    from stream.metrics import Metrics
    from stream.policy import load_policy
    from stream.settings import load_settings

    try:
        settings = load_settings(args.config)
        configure_logging(settings.logging.log_level, settings.logging.log_text)
        classifier = _load_classifier(settings.model)
        policy = load_policy(
            settings.policy.policy_file, classifier.categories, classifier.thresholds
        )
    except (ConfigError, ModelLoadError) as exc:
        return _fail(str(exc))
    app = build_app(settings, classifier, policy, Metrics())
    run_worker(app, settings)
    return 0


def _stdin_texts() -> Iterator[str]:
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(
                f'stdin line {n} is not JSON ({exc.msg}); expected {{"text": ...}}'
            ) from exc
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise ConfigError(f'stdin line {n} has no string "text" field')
        yield text


def cmd_classify(args: argparse.Namespace) -> int:
    from classifiers.api import moderate
    from stream.settings import load_settings

    try:
        settings = load_settings(args.config)
        classifier = _load_classifier(settings.model)
    except (ConfigError, ModelLoadError) as exc:
        return _fail(str(exc))
    model_id = f"{classifier.name}@{classifier.version}"
    texts: Iterator[str] = iter(args.texts) if args.texts else _stdin_texts()
    out = sys.stdout.buffer
    batch: list[str] = []

    def flush() -> None:
        for result in moderate(classifier, batch):
            out.write(orjson.dumps({"model": model_id, **result}) + b"\n")
        out.flush()
        batch.clear()

    try:
        for text in texts:
            batch.append(text)
            if len(batch) >= args.batch_size:
                flush()
    except ConfigError as exc:
        flush()
        return _fail(str(exc))
    if batch:
        flush()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from stream.bench import run_bench

    return run_bench(args)


def _delegate(module: str, argv: Sequence[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return _fail(
            f"{module} needs the training extras: pip install 'modstream[train]' ({exc.name} missing)"
        )
    return int(mod.main(list(argv)) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Tansu broker (development only)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser(
        "worker", help="run the streaming worker (settings from MODSTREAM_* and --config)"
    )
    p.add_argument("--config", type=Path, help="YAML settings file")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("classify", help="score texts given as arguments or as JSON lines on stdin")
    p.add_argument(
        "texts", nargs="*", help='texts to score; none: read {"text": ...} lines from stdin'
    )
    p.add_argument("--config", type=Path)
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "demo", help="broker + worker + replay of bundled chat traffic, then a summary"
    )
    p.add_argument(
        "--messages", type=int, default=0, help="replay only the first N records (0: all)"
    )
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--file", type=Path, help="replay this file instead of the bundled traffic")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "bench", help="model-only, null-pipeline and end-to-end throughput and latency"
    )
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("--quick", action="store_true", help="shorter runs (for CI)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.set_defaults(func=cmd_bench)

    for name, module, text in (
        ("eval", "classifiers.evaluate", "per-category AUPRC/F1 with CIs on a labelled JSONL"),
        ("train", "classifiers.train", "rebuild the default model (needs modstream[train])"),
        ("export", "classifiers.export", "export a checkpoint to ONNX fp32/int8/fp16"),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.set_defaults(func=None, module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in ("eval", "train", "export"):
        module = {
            "eval": "classifiers.evaluate",
            "train": "classifiers.train",
            "export": "classifiers.export",
        }
        return _delegate(module[argv[0]], argv[1:])
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
