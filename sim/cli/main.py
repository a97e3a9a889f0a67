"""`moe-sim` entry point: one module per subcommand, each with add_parser() and run()."""

from __future__ import annotations

import argparse
import importlib
import sys

from sim import __version__
from sim.errors import UserError

# subcommand name -> module under sim.cli; each module defines add_parser(subparsers) and run(args) -> int
COMMANDS = {
    "model": "sim.cli.model_cmd",
    "profiles": "sim.cli.profiles_cmd",
    "route": "sim.cli.route_cmd",
    "run": "sim.cli.run_cmd",
    "search": "sim.cli.search_cmd",
    "sweep": "sim.cli.sweep_cmd",
    "plot": "sim.cli.plot_cmd",
    "validate": "sim.cli.validate_cmd",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        sys.stderr.write(f"error: {self.prog}: {message}\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="moe-sim", description="Simulate Mixture-of-Experts LLM training on NPU and GPU clusters.")
    parser.add_argument("--version", action="version", version=f"moe-sim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for modname in COMMANDS.values():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue  # subcommand not built yet
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
