"""Headless MuJoCo rendering, shared by the MuJoCo robots and Meta-World.

MuJoCo picks its OpenGL backend when it is first imported, so importing this module (which
both env modules do at their top, before any env imports MuJoCo) sets ``MUJOCO_GL=egl``
when the user set none and there is no display. Rendering failures become one message that
says what to install or set; training and evaluation never render.
"""

from __future__ import annotations

import os
from typing import Any

if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

__all__ = ["render_or_explain"]


def render_or_explain(env: Any) -> Any:
    """``env.render()``, or a RuntimeError naming the OpenGL backends MuJoCo can use.

    Raises:
        RuntimeError: When MuJoCo cannot render with the configured backend.
    """
    try:
        return env.render()
    except Exception as error:  # MuJoCo's GL errors have no common type
        raise RuntimeError(
            f"MuJoCo could not render with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
            f"({error}); headless rendering needs EGL (libegl1, set MUJOCO_GL=egl) or "
            "OSMesa (libosmesa6, MUJOCO_GL=osmesa). Training and evaluation do not render."
        ) from error
