"""Reading YAML with numbers as people write them.

PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent: ``1e-3``, ``3e-4``
and ``1.0e5`` are read as strings, so ``choices: [1e-3, 3e-4, 0.01]`` would give the objective
two strings and a float. Search files and space files are read with :func:`load_yaml`, which
also reads YAML 1.2 floats with an exponent (``1e-3``, ``1E5``, ``1.e3``, ``.5e-2``) as floats.
Quoted text (``'1e-3'``) stays a string; everything else is PyYAML's safe loader.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 (core schema) floats that YAML 1.1 reads as strings: those with an exponent.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$")


class NumberLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers with an exponent as floats."""


# Appended after the YAML 1.1 resolvers, so plain integers and 1.1 floats resolve as before.
NumberLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML ``text`` as the safe loader does, but with ``1e-3`` etc. as floats.

    Raises:
        yaml.YAMLError: the text is not valid YAML.
    """
    return yaml.load(text, Loader=NumberLoader)  # safe: NumberLoader is a SafeLoader
