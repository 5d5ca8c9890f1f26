"""A field for n_steps_each (T): one whole number for every level, or one per level ("5,5,10,20")."""
from __future__ import annotations

from typing import Optional, Tuple, Union

from PySide6.QtWidgets import QLineEdit, QWidget

Steps = Union[int, Tuple[int, ...]]


class StepsEdit(QLineEdit):
    """`value()` is an int ("40") or a tuple of ints ("5,5,10,20", commas or spaces between); ValueError naming
    the text when it is not whole numbers. The range (>= 1, or >= 0 per level) and the count per level are
    SampleConfig's checks, not this field's."""

    def __init__(self, name: str = "n_steps_each", value: Optional[Steps] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.name = name
        self.setObjectName(name)
        self.setPlaceholderText("e.g. 40, or 5,5,10,20 (one per level)")
        if value is not None:
            self.set_value(value)

    def set_value(self, value: Steps) -> None:
        self.setText(",".join(str(int(t)) for t in value) if isinstance(value, (tuple, list)) else str(int(value)))

    def error(self) -> Optional[str]:
        try:
            self.value()
        except ValueError as e:
            return str(e)
        return None

    def value(self) -> Steps:
        text = self.text().strip()
        parts = [p for p in text.replace(",", " ").split()]
        if not parts:
            raise ValueError(f"{self.name} is empty: enter a whole number of steps (or one per level: 5,5,10,20)")
        try:
            counts = tuple(int(p.replace("_", "")) for p in parts)
        except ValueError:
            raise ValueError(f"{self.name}={text!r} is not whole numbers: enter one count (40) or one per level "
                             f"separated by commas (5,5,10,20)") from None
        return counts[0] if len(counts) == 1 and "," not in text else counts
