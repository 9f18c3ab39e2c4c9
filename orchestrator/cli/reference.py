"""The command-line reference (``docs/cli.md``), generated from the parser's own commands, arguments and help.
``python -m lowloss.orchestrator.cli.reference`` prints it; a test fails when ``docs/cli.md`` is stale."""

from __future__ import annotations

import argparse
import sys

from .main import build_parser

INTRO = """# The command line

Generated from the parser (`python -m lowloss.orchestrator.cli.reference > docs/cli.md`; a test fails when it is
stale). `lowloss COMMAND --help` says the same. Bad input is one line naming the field, the bad value and what is
allowed, exit code 2, nothing in the store touched; a study exits 0 when every planned unit is committed and every
stage closed, 1 when units failed, are blocked, damaged or left pending, and 130 when it was stopped with units left to
run (`lowloss resume DIR` continues them).
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        name = action.metavar or action.dest.upper()
        return (
            f"`{name}`" + (" …" if action.nargs in ("+", "*") else "") + (" (optional)" if action.nargs == "?" else "")
        )
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{flags}`"
    value = action.metavar or ("|".join(map(str, action.choices)) if action.choices else action.dest.upper())
    return f"`{flags} {value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def command_section(name: str, help_text: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"## `lowloss {name}`", "", _cell(help_text), "", "| argument | what it is |", "| --- | --- |"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = _cell(action.help or "")
        if action.required and action.option_strings:
            text += " (required)"
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += f" (default: {action.default})"
        argument = _argument(action).replace("|", "\\|")
        lines.append(f"| {argument} | {text} |")
    return lines + [""]


def reference() -> str:
    parser = build_parser()
    helps = _helps(parser)
    lines = [INTRO, "| command | what it does |", "| --- | --- |"]
    commands = _subparsers(parser)
    lines += [f"| [`{name}`](#lowloss-{name}) | {_cell(helps.get(name, ''))} |" for name in commands]
    lines.append("")
    for name, sub in commands.items():
        lines += command_section(name, helps.get(name, ""), sub)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
