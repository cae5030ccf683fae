"""`tee-agent completion bash|zsh`: a shell completion script made from the parser itself.

The script knows every command path (`vault register`, `verify agent`, ...) with its
subcommands and options, so it never falls out of step with the parser and completes
without starting Python. Where nothing matches (an option's value, a file), the shell's
own file completion takes over. zsh runs the same script through `bashcompinit`.
"""

from __future__ import annotations

import argparse
import shlex

from host.cli.outcome import EXIT_OK
from host.cli.parser import build_parser

_FUNCTION = "_tee_agent_complete"


def run(args: argparse.Namespace) -> int:
    print(script(args.shell))
    return EXIT_OK


def command_words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each command path (words joined by spaces, "" for the top) -> what may follow it:
    its subcommands, then its options."""
    found: dict[str, list[str]] = {}

    def walk(path: str, current: argparse.ArgumentParser) -> None:
        words: list[str] = []
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    words.append(name)
                    walk(f"{path} {name}".strip(), child)
        for action in current._actions:
            words += [option for option in action.option_strings if option.startswith("--")]
        found[path] = words

    walk("", parser)
    return found


def script(shell: str) -> str:
    """The completion script for `shell` ("bash" or "zsh")."""
    paths = command_words(build_parser())
    known = " | ".join(shlex.quote(f" {path}") for path in sorted(paths) if path)
    cases = "\n".join(
        f"        {shlex.quote(f' {path}' if path else '')}) words={shlex.quote(' '.join(words))} ;;"
        for path, words in sorted(paths.items())
    )
    body = f"""\
# tee-agent completion ({shell}); made by `tee-agent completion {shell}`
{_FUNCTION}() {{
    local cur word words path="" i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        case "$path $word" in
            {known}) path="$path $word" ;;
        esac
    done
    case "$path" in
{cases}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F {_FUNCTION} tee-agent
"""
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body
