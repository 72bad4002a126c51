"""``PyPlugin``: Python plugins in PyPANDA's style (``panda.pyplugins.load(Cls)``)."""

from __future__ import annotations


class PyPlugin:
    """Base class of Python plugins. Subclasses take ``panda`` in ``__init__`` and may
    define ``uninit()``. Arguments given to ``pyplugins.load(..., args=)`` are read with
    :meth:`get_arg` and :meth:`get_arg_bool`."""

    def __init__(self, panda):
        self.panda = panda

    def get_arg(self, name):
        return getattr(self, "args", {}).get(name)

    def get_arg_bool(self, name) -> bool:
        value = self.get_arg(name)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "y", "on")
        return bool(value)

    @staticmethod
    def ppp_export(method):
        """Marks a method as callable by other plugins (``panda.pyplugins.ppp.Name.method``)."""
        return method
