"""YAML that refuses a key given twice in one mapping.

PyYAML's safe loader keeps the last of two equal keys without a word, so a recipe that sets
`run:` twice silently loses the first section; every file a user hands us (recipe, constitution,
a --set value) is read with this loader instead. It subclasses SafeLoader, so no tag can build
a Python object (nothing in a recipe may execute).
"""

from __future__ import annotations

import yaml


class DuplicateKey(yaml.MarkedYAMLError):
    """A mapping names one key twice; `problem_mark` points at the second one."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            # Only the keys written in this mapping: a merge (<<: *anchor) may be overridden.
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    fresh = key not in seen
                except TypeError:  # an unhashable key: the base class reports it
                    break
                if not fresh:
                    raise DuplicateKey(
                        "while reading a mapping",
                        node.start_mark,
                        f"the key {key!r} is given twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(text: str):
    """Like yaml.safe_load, but a duplicate key in any mapping raises DuplicateKey (a YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
