# Runs first on every boot: picks the firmware slot (runtime/slots.py).
# A pending OTA slot gets up to three boots to confirm itself, then the
# node rolls back; the chosen slot's lib folder goes first on sys.path.
# Whatever goes wrong here, the node still boots the factory image.
import sys


def _boot():
    loaded = list(sys.modules)
    try:
        from runtime import slots

        try:
            import board

            data, sync = board.DATA_DIR, board.flash_sync
            root = board.SLOTS if isinstance(getattr(board, "SLOTS", None), str) else slots.ROOT
        except ImportError:
            data, sync, root = "/data", None, slots.ROOT
        slots.boot(data, root, sync)
    except Exception as e:
        sys.print_exception(e)
    # forget the /lib modules loaded here, so a slot's own copies load from
    # now on (built-in, frozen and host modules stay: they cannot be shadowed)
    for name in list(sys.modules):
        if name not in loaded and getattr(sys.modules[name], "__file__", "").startswith("/lib/"):
            del sys.modules[name]


_boot()
del _boot
