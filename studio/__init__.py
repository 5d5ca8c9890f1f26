"""NCSN Studio: the PySide6 desktop app around ncsn_core."""
import sys


def _guard_singletons_against_emit_refcount_bug() -> bool:
    """PySide6 6.12 on Python < 3.12: every Python-side ``SignalInstance.emit()`` returns True without a
    new reference, so each emit (ours, pyqtgraph's) drops True's refcount by one until the interpreter
    aborts ("bool_dealloc: deallocating True or False", or none_dealloc at exit). Python 3.12 made these
    singletons immortal; here, only when a probe shows the leak, we give True, False and None the same
    practically-infinite refcount. Returns True when the guard was applied."""
    if sys.version_info >= (3, 12):
        return False
    try:
        from PySide6.QtCore import QObject, Signal
    except ImportError:
        return False

    class _Probe(QObject):
        probed = Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.probed.emit()
    if sys.getrefcount(True) >= before:
        return False
    import ctypes
    for obj in (True, False, None):  # ob_refcnt is the first field of every CPython object
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    return True


EMIT_REFCOUNT_GUARD = _guard_singletons_against_emit_refcount_bug()
