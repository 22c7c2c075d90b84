"""Widgets and colours shared by the panels (one place: no panel imports another)."""

from __future__ import annotations

from imgui_bundle import hello_imgui, imgui

FACETS = ("Learned features", "Activation matrix")
THEMES = ("dark", "light")
GREEN = imgui.ImVec4(0.35, 0.85, 0.45, 1.0)
RED = imgui.ImVec4(1.0, 0.42, 0.40, 1.0)
MUTED = imgui.ImVec4(0.6, 0.62, 0.68, 1.0)
NOW = imgui.ImVec4(1.0, 0.80, 0.20, 1.0)  # current step (as the view's selection colour)
OTHER = imgui.ImVec4(0.35, 0.85, 1.0, 1.0)  # the compared step


def em(n: float) -> float:
    return hello_imgui.em_size(n)


def hint(text: str) -> None:
    imgui.push_text_wrap_pos(0.0)
    imgui.text_disabled(text)
    imgui.pop_text_wrap_pos()


def entry(widget_id: str, hint_text: str, text: str, button: str, enabled: bool = True) -> tuple[str, bool]:
    """A text box and its button on one line: ``(text, go)``, ``go`` when the button is
    clicked or Enter pressed in the box with some text (the button is disabled without)."""
    imgui.set_next_item_width(-em(5))
    entered, text = imgui.input_text_with_hint(
        widget_id, hint_text, text, imgui.InputTextFlags_.enter_returns_true
    )
    imgui.same_line()
    imgui.begin_disabled(not text.strip() or not enabled)
    go = (imgui.button(button) or entered) and bool(text.strip()) and enabled
    imgui.end_disabled()
    return text, go


def columns(table_id: str, widths: list[tuple[str, float]]) -> bool:
    """Begin a resizable table of stretching columns (name, relative width) and enter its first
    cell; ``False``: nothing to draw (then no ``end_table``)."""
    flags = imgui.TableFlags_.resizable | imgui.TableFlags_.borders_inner_v
    if not imgui.begin_table(table_id, len(widths), flags):
        return False
    for name, weight in widths:
        imgui.table_setup_column(name, imgui.TableColumnFlags_.width_stretch, weight)
    imgui.table_next_row()
    imgui.table_next_column()
    return True


def section(label: str) -> bool:
    return imgui.collapsing_header(label, imgui.TreeNodeFlags_.default_open)


def image_fit(glo: int, size: tuple[int, int], width: float, max_h: float | None = None) -> None:
    w, h = size
    scale = min(width / max(w, 1), 1e9 if max_h is None else max_h / max(h, 1))
    scale = max(scale, 0.05)
    imgui.image(imgui.ImTextureRef(glo), imgui.ImVec2(w * scale, h * scale))


def num(v: object) -> str:
    if not isinstance(v, (int, float)):
        return "–"
    v = float(v)
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"
