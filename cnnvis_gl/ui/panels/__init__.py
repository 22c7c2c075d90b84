"""The dockable panels, one module each, and the docking layout that places them (as data).

Each panel is a plain function of ``(state, actions)``: it reads the
:class:`~cnnvis_gl.ui.state.AppState` and calls the commands of
:class:`~cnnvis_gl.ui.actions.Actions`.  Adding a panel is one module here plus one line in
:data:`PANELS`; :func:`~cnnvis_gl.ui.app.runner_params` builds the dock from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bookmarks import bookmarks_panel
from .chrome import menus, status_bar
from .cluster import cluster_panel
from .controls import controls_panel
from .lineage import lineage_panel
from .network import WINDOW, network_view
from .neuron import neuron_panel
from .notes import notes_panel
from .present import present_view
from .runs import TITLE as RUNS
from .runs import runs_panel
from .snapshots import snapshots_panel
from .tour import tour_panel
from .training import training_panel

if TYPE_CHECKING:
    from ..actions import Actions
    from ..state import AppState

__all__ = [
    "DOCK_SPLITS", "PANELS", "RUNS", "SIDE_BY_SIDE", "Panel", "Split", "menus", "present_view", "status_bar"
]  # fmt: skip


@dataclass(frozen=True)
class Split:
    """A docking split: ``new`` is cut from ``initial`` on side ``direction``."""

    initial: str
    new: str
    direction: str  # left | right | up | down
    ratio: float


@dataclass(frozen=True)
class Panel:
    """A dockable window: its title, dock space and the function that draws it."""

    title: str
    space: str
    draw: Callable[[AppState, Actions], None]
    own_begin: bool = False  # the panel calls begin / end itself (style pushed around begin)
    focus: bool = False  # the selected tab of its dock space at start
    closable: bool = True


DOCK_SPLITS = (
    Split("MainDockSpace", "ControlsSpace", "left", 0.22),
    Split("MainDockSpace", "InspectorSpace", "right", 0.34),
    Split("MainDockSpace", "TimelineSpace", "down", 0.3),
    Split("InspectorSpace", "NeuronSpace", "down", 0.52),
)

#: The registry: every dockable panel, in the order of the View menu.
PANELS = (
    Panel("Controls", "ControlsSpace", controls_panel),
    Panel(WINDOW, "MainDockSpace", network_view, own_begin=True, closable=False),
    Panel("Cluster", "InspectorSpace", cluster_panel),
    Panel("Neuron", "NeuronSpace", neuron_panel),
    Panel("Snapshots", "TimelineSpace", snapshots_panel),
    Panel("Training", "TimelineSpace", training_panel, focus=True),
    Panel("Bookmarks", "TimelineSpace", bookmarks_panel),
    Panel("Tour", "TimelineSpace", tour_panel),
    Panel("Notes", "TimelineSpace", notes_panel),
    Panel("Lineage", "TimelineSpace", lineage_panel),
    Panel(RUNS, "InspectorSpace", runs_panel),
)
#: With a second run to compare with, its panel takes the right half of the view's space.
SIDE_BY_SIDE = Split("MainDockSpace", "OtherRunSpace", "right", 0.5)
