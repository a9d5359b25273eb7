"""What the tray's menu needs from the system, said the same way everywhere.

The tray's menu comes from PyGObject (the ``tray-gtk`` extra): pip builds it from source,
which needs the GObject-Introspection and cairo headers, pkg-config and a C compiler; at run
time it needs the GTK 3 and AppIndicator typelibs. ``tools/tray_deps.py`` (``make run``),
the daemon's log and ``freight doctor`` all name the same packages. This module imports
nothing, so that ``tools/tray_deps.py`` can load it before Freight is installed.
"""

from __future__ import annotations

#: pkg-config modules that PyGObject < 3.51 (and pycairo) build against.
PKG_CONFIG_MODULES = ("gobject-introspection-1.0", "cairo")

APT = ("sudo apt install libgirepository1.0-dev libcairo2-dev pkg-config gcc python3-dev"
       " gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1")
DNF = ("sudo dnf install gobject-introspection-devel cairo-gobject-devel cairo-devel"
       " pkgconf-pkg-config gcc python3-devel gtk3 libayatana-appindicator-gtk3")


def install_lines() -> list[str]:
    """The install commands, one a line, labelled by the systems they are for."""
    return [f"Debian/Ubuntu: {APT}", f"Fedora:        {DNF}"]


def short_fix() -> str:
    """One line for `freight doctor` and `freight status`: what gives the icon its menu."""
    return (f"install PyGObject's build dependencies ({APT}; Fedora: {DNF}), then run"
            " `make run` again (or: pip install 'freight[tray-gtk]') and restart the daemon")
