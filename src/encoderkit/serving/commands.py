"""The `serve` and `fill-mask` subcommands: flags, then a call into the library.

Kept apart from cli.py so the parser stays light (nothing here imports torch until a command runs).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from encoderkit.serving.settings import TOKEN_ENV, ServeSettings, check_bind

DEFAULTS = ServeSettings()


def add_commands(sub: Any) -> None:
    """Add `serve` and `fill-mask` to the subparsers of the `encoderkit` parser."""
    serve = sub.add_parser("serve", help="serve a model over HTTP: JSON API with micro-batching, web page")
    serve.add_argument(
        "--model", required=True, help="an encoderkit model folder, or a masked-LM model (fill-mask)"
    )
    serve.add_argument(
        "--host", default=DEFAULTS.host, help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULTS.port, help="default 8000; 0 picks a free port (printed)"
    )
    serve.add_argument("--token", help=f"require `Authorization: Bearer TOKEN` (default: ${TOKEN_ENV})")
    serve.add_argument(
        "--allow-no-token", action="store_true", help="listen on a non-loopback --host without a token"
    )
    limits = serve.add_argument_group("limits and batching")
    for name, kind, help_text in (
        ("max_inputs", int, "inputs per request"),
        ("max_chars", int, "characters per text field (a QA context is read in windows)"),
        ("max_body_bytes", int, "request body size"),
        ("timeout_s", float, "seconds a request may wait for its answer (then 504)"),
        ("max_batch", int, "inputs per model call, across requests"),
        ("batch_wait_ms", float, "how long a batch waits for more requests"),
        ("max_queue", int, "requests waiting for the model (then 503)"),
    ):
        default = getattr(DEFAULTS, name)
        flag = "--" + name.replace("_", "-")
        limits.add_argument(flag, type=kind, default=default, help=f"{help_text} (default {default})")
    serve.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(handler=cmd_serve)

    fill = sub.add_parser("fill-mask", help="top-k tokens for each mask token of a text (masked-LM models)")
    fill.add_argument("--model", required=True, help="model name or folder with a masked-LM head")
    fill.add_argument("texts", nargs="+", metavar="TEXT", help="text holding the mask token, e.g. [MASK]")
    fill.add_argument("--top-k", type=int, default=5, help="candidates per mask (default 5)")
    fill.add_argument(
        "--whole-words", action="store_true", help="offer whole words only (no special or sub-word tokens)"
    )
    fill.add_argument(
        "--joint",
        action="store_true",
        help="also rank whole fillings of all masks by joint probability (a beam of --top-k)",
    )
    fill.add_argument("--json", action="store_true", help="print one JSON object per text")
    fill.set_defaults(handler=cmd_fill_mask)


def cmd_serve(args: argparse.Namespace) -> int:
    from encoderkit.serving.server import serve

    token = args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)
    settings = ServeSettings(
        host=args.host,
        port=args.port,
        token=token,
        max_inputs=args.max_inputs,
        max_chars=args.max_chars,
        max_body_bytes=args.max_body_bytes,
        timeout_s=args.timeout_s,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        max_queue=args.max_queue,
    )
    check_bind(settings.host, settings.token, args.allow_no_token)  # before loading anything
    serve(args.model, settings, args.log_level)
    return 0


def cmd_fill_mask(args: argparse.Namespace) -> int:
    from encoderkit.errors import UserError
    from encoderkit.inference.predictor import Predictor
    from encoderkit.tasks.fill_mask import MAX_TOP_K

    if not 1 <= args.top_k <= MAX_TOP_K:
        raise UserError(f"--top-k: must be from 1 to {MAX_TOP_K}, got {args.top_k}")
    predictor = Predictor.load(args.model)  # a masked LM encoderkit trained (`--task mlm`), or any other
    if not predictor.task_impl.info(predictor.meta).get("mask_token"):
        raise UserError(f"{args.model}: a {predictor.task} model, not a masked LM: it cannot fill masks")
    flags = {"top_k": args.top_k, "whole_words": args.whole_words, "joint": args.joint}
    rows = [{"text": text, **flags} for text in args.texts]
    for text, prediction in zip(args.texts, predictor.predict_rows(rows), strict=True):
        shown = json.dumps({"text": text, **prediction}, ensure_ascii=False) if args.json else None
        print(shown or table(text, prediction))
    return 0


def table(text: str, prediction: dict[str, Any]) -> str:
    """The text, then per mask its candidates: probability, token, filled text."""
    lines = [text]
    for m, candidates in enumerate(prediction["masks"]):
        if len(prediction["masks"]) > 1:
            lines.append(f"  mask {m + 1}:")
        width = max(len(c["token"]) for c in candidates)
        lines += [f"  {c['score']:.4f}  {c['token']:<{width}}  {c['sequence']}" for c in candidates]
    if prediction.get("joint"):
        lines.append("  joint:")
        lines += [
            f"  {f['score']:.4f}  {' | '.join(f['tokens'])}  {f['sequence']}" for f in prediction["joint"]
        ]
    return "\n".join(lines)
