"""The measured enclave config as commented TOML: the one writer of `enclave.toml`.

`tee-agent init` and the local-chain kit (`devnet`) build an `EnclaveConfig` value and write
it here; `enclave.config.parse_config` reads it back to an equal config with the same
config hash. The comments come from the model itself (field descriptions, class docstrings).
"""

from __future__ import annotations

import textwrap
from decimal import Decimal

import tomlkit
from pydantic import BaseModel
from tomlkit.items import Item, Table

from enclave.config import EnclaveConfig

# Comment lines of the written TOML stay within the project's line length.
_COMMENT_WIDTH = 90


def config_toml(config: EnclaveConfig, *, header: str) -> str:
    """`config` as commented TOML, which `parse_config` reads back to an equal config with the
    same config hash.

    `header` opens the file as comment lines. Each table's header carries a comment (its
    field's description, else its model's docstring's first line), and each key its field's
    description on the lines above it. Decimals are written exactly (`_decimal_item`), never
    as floats; a key whose value is None is left out (TOML has no null, and every such field
    defaults to None).

    Raises:
        TypeError: a value that TOML cannot carry exactly (a float, say).
    """
    document = tomlkit.document()
    for line in header.splitlines():
        document.add(tomlkit.comment(line.rstrip()))
    if header:
        document.add(tomlkit.nl())
    _add_fields(document, config)
    return tomlkit.dumps(document)


def _add_fields(container: tomlkit.TOMLDocument | Table, model: BaseModel) -> None:
    """Add `model`'s fields to `container`: plain keys first, then tables (TOML puts every
    key of a table before its sub-tables)."""
    tables: list[tuple[str, Item]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        if isinstance(value, BaseModel):
            tables.append((name, _table(value, field.description or _summary(value))))
        elif isinstance(value, dict):
            tables.append((name, _super_table(name, value)))
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            array = tomlkit.aot()
            for item in value:
                array.append(_table(item, _summary(item)))
            tables.append((name, array))
        else:
            for line in textwrap.wrap(field.description or "", _COMMENT_WIDTH):
                container.add(tomlkit.comment(line))
            container.add(name, _value_item(value))
    for name, table in tables:
        container.add(name, table)


def _summary(model: BaseModel) -> str:
    """The first line of the model class's own docstring ("" without one)."""
    doc = type(model).__doc__
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _table(model: BaseModel, comment: str) -> Table:
    table = tomlkit.table()
    if comment:
        table.comment(comment)
    _add_fields(table, model)
    return table


def _super_table(name: str, models: dict[str, object]) -> Table:
    """A table of tables, as `[tokens.WETH]`, `[tokens.USDT]`: no header of its own."""
    table = tomlkit.table(is_super_table=True)
    for key, model in models.items():
        if not isinstance(model, BaseModel):
            raise TypeError(f"{name}.{key}: only tables of tables are written, found {model!r}")
        table.add(key, _table(model, _summary(model)))
    return table


def _value_item(value: object) -> Item:
    if isinstance(value, bool):
        return tomlkit.item(value)
    if isinstance(value, int):
        return tomlkit.integer(value)
    if isinstance(value, Decimal):
        return _decimal_item(value)
    if isinstance(value, str):
        return _string_item(value)
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_value_item(item))
        return array
    raise TypeError(f"no exact TOML form for {type(value).__name__} {value!r}")


def _decimal_item(value: Decimal) -> Item:
    """An integer when the Decimal's text is one, else that text as a string.

    The config hash covers the Decimal's text ("20" and "20.0" hash differently), so the
    TOML must give back the very same text; a float would not even keep the value.
    """
    text = str(value)
    if value.is_finite() and text == str(int(value)):
        return tomlkit.integer(int(value))
    return tomlkit.string(text)


def _string_item(text: str) -> Item:
    """The most readable exact TOML string: multi-line text as a multi-line string (unless it
    holds a carriage return, which TOML parsers may normalise away), text with double quotes
    (JSON, as in the LLM examples) as a literal string when it can be one, else a basic
    string with escapes."""
    if "\n" in text and "\r" not in text:
        return tomlkit.string(text, multiline=True)
    if '"' in text and "'" not in text and text.isprintable():
        return tomlkit.string(text, literal=True)
    return tomlkit.string(text)
